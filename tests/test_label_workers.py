"""Several workers on one labelling (issue 27): runs sharing a store split its rows, so two cost
what one costs and give the labels of one; a dead worker's rows return (at once when it ran on
this machine, when its lease expires elsewhere), and a live worker's are left to it; across
machines, `--shard i/n` runs each write their own store and `--merge` joins them into the store
one run writes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cli import w2sg
from label_runs import labels
from test_label import config
from test_store_safety import served, together

from agents import load_config
from agents.testing import FakeServer
from oversight.labelling import shards
from oversight.labelling.claims import MACHINE
from oversight.labelling.label import LabelConfig, label, selection
from oversight.labelling.merge import merge
from oversight.labelling.store import COLUMNS, LabelStore


@pytest.mark.parametrize("attempt", [1, 2])
def test_two_runs_on_one_store_split_the_rows_and_give_one_runs_labels(
    tmp_path: Path, server: FakeServer, attempt: int
) -> None:
    asyncio.run(label(load_config(served(tmp_path, server, "clean"), LabelConfig)))
    server.reset(latency_s=0.05)  # slow enough that both are at work at once
    before = server.stats()["requests"]
    a, b = served(tmp_path, server, "a"), served(tmp_path, server, "b")
    runs = together(a, b)
    # A blind judge makes one request per row: the two runs made what one run makes. Before,
    # each labelled all 16 rows (32 requests).
    assert server.stats()["requests"] - before == 16
    assert runs[str(a)]["labelled"] > 0 and runs[str(b)]["labelled"] > 0
    assert runs[str(a)]["labelled"] + runs[str(b)]["labelled"] == 16
    assert all(r["failed"] == 0 and r["elsewhere"] > 0 for r in runs.values())
    assert labels(tmp_path / "shared.sqlite") == labels(tmp_path / "clean-store.sqlite")


def test_a_dead_workers_rows_return_and_a_live_workers_wait_for_it(
    tmp_path: Path, server: FakeServer
) -> None:
    path = served(tmp_path, server, "w")
    cfg = load_config(path, LabelConfig).model_copy(update={"lease_s": 1.0})
    rows, _, chash = selection(cfg)
    ids = [e.id for e in rows]
    gone = subprocess.Popen(["true"])
    gone.wait()
    store = LabelStore(cfg.store)
    # Rows 0-1: a worker of this machine whose process is gone (its lease would hold an hour);
    # rows 2-3: a worker on another machine that stopped renewing (its lease ends in 1 s);
    # rows 4-5: a live worker here (this test's process), whose lease ends in 1.5 s.
    store.claim(cfg.protocol, chash, ids[0:2], f"{MACHINE}/{gone.pid}/x", 3600)
    store.claim(cfg.protocol, chash, ids[2:4], "elsewhere:1/4242/x", 1.0)
    claimed = store.claim(cfg.protocol, chash, ids[4:6], f"{MACHINE}/{os.getpid()}/x", 1.5)
    store.close()
    assert claimed.mine == ids[4:6]
    leased_until = time.time() + 1.5
    run = asyncio.run(label(cfg))
    assert (run.labelled, run.failed, run.elsewhere) == (16, 0, 0)
    store = LabelStore(cfg.store)
    created = dict(store.db.execute("SELECT example_id, created FROM labels").fetchall())
    leases = store.db.execute("SELECT count(*) FROM leases").fetchone()[0]
    store.close()
    assert sorted(created) == sorted(ids) and leases == 0
    # The live worker's rows were left to it until its lease lapsed.
    assert min(created[i] for i in ids[4:6]) >= leased_until - 0.05


def timeless(value: Any) -> Any:
    """`value` without its wall times (a record's `seconds`, per turn and per verdict)."""
    if isinstance(value, dict):
        return {k: timeless(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def stored(path: Path) -> list[tuple[Any, ...]]:
    """Every column of every label, its record without wall times, and not when it was written."""
    store = LabelStore(path)
    rows = store.db.execute(f"SELECT {COLUMNS} FROM labels ORDER BY example_id").fetchall()
    store.close()
    return [(*r[:-1], timeless(json.loads(r[-1]))) for r in rows]


def test_shards_merged_give_the_store_of_one_run(tmp_path: Path) -> None:
    one = load_config(config(tmp_path, "one.sqlite", questions=6), LabelConfig)
    asyncio.run(label(one))
    path = config(tmp_path, "labels.sqlite", questions=6)
    cfg = load_config(path, LabelConfig)
    runs = [asyncio.run(label(cfg, shard=f"{i}/3")) for i in (1, 2)]
    assert [r.total for r in runs] == [4, 4] and all(r.labelled == 4 for r in runs)
    assert not cfg.store.exists() and (tmp_path / "labels.shard-2-of-3.sqlite").exists()
    early = merge(cfg)
    assert (early.missing_shards, early.ok, len(early.missing)) == ([3], 8, 4)
    asyncio.run(label(cfg, shard="3/3"))
    out = w2sg("label", str(path), "--merge")
    assert out.returncode == 0, out.stderr
    assert (
        "merged 3 of 3 shard stores" in out.stdout and "12 labelled, 0 failed, 0 missing, of 12" in out.stdout
    )
    assert stored(cfg.store) == stored(one.store)  # row for row, provenance and all


def test_a_merge_names_what_is_missing(tmp_path: Path) -> None:
    path = config(tmp_path, "labels.sqlite", questions=3)
    out = w2sg("label", str(path), "--merge")
    assert out.returncode == 2 and "no shard stores of labels.sqlite" in out.stderr, out.stderr
    asyncio.run(label(load_config(path, LabelConfig), shard="1/2"))
    out = w2sg("label", str(path), "--merge")
    assert out.returncode == 1 and "shards not run yet: 2" in out.stdout and "3 missing, of 6" in out.stdout
    out = w2sg("label", str(path), "--shard", "3/2")
    assert out.returncode == 2 and "--shard '3/2': i must be in 1..2" in out.stderr, out.stderr
    for bad in ("0/2", "half", "1/0"):
        with pytest.raises(ValueError, match=f"--shard '{bad}'"):
            shards.parse(bad)
