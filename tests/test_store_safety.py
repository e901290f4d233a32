"""Label stores never lose a good label and fail clearly (issue 27): a failure never replaces a
stored success, even from a concurrent run against a broken server; two processes creating one
store at once both succeed; a damaged, foreign, read-only or misplaced store is one `error:` line
naming the file with exit status 2 and nothing written; `w2sg export` only reads its input and
refuses a file that is not a label store untouched; `w2sg web` refuses one before it serves."""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import multiprocessing
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli import ROOT, w2sg
from label_runs import labels
from test_label import config
from test_reliability import write_config

from agents import load_config
from agents.cache import ResponseCache
from agents.testing import FakeServer
from oversight.labelling.label import LabelConfig, label
from oversight.labelling.store import LabelRow, LabelStore

FORK = multiprocessing.get_context("fork")  # children start at once, with this process's imports


def put(store: LabelStore, i: int, status: str, p: float | None = None) -> None:
    error = None if status == "ok" else "RetriesExhaustedError: HTTP 500"
    store.put(
        LabelRow(example_id=f"q{i}", protocol="blind", config_hash="h", status=status, p_true=p, error=error)
    )


def test_a_failure_never_replaces_a_stored_label_but_a_label_replaces_a_failure(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "s.sqlite")
    put(store, 0, "ok", 0.8)
    put(store, 0, "failed")  # a broken run's later failure of the same row
    put(store, 1, "failed")
    put(store, 1, "ok", 0.3)  # a success replaces a failure
    put(store, 2, "failed")
    put(store, 2, "failed")  # the newer failure's reason is kept
    got = {r.example_id: (r.status, r.p_true) for r in store.rows("blind", "h")}
    store.close()
    assert got == {"q0": ("ok", 0.8), "q1": ("ok", 0.3), "q2": ("failed", None)}


def served(tmp_path: Path, server: FakeServer, name: str) -> Path:
    """A blind-judge config whose model is served at `server`'s address (`openai.base_urls`,
    which is not part of the config hash), one attempt per call, into `shared.sqlite` (or
    `clean-store.sqlite` for "clean")."""
    cfg = yaml.safe_load(write_config(tmp_path, server, "shared.sqlite", attempts=1).read_text())
    for spec in cfg["models"].values():
        spec.update(name="openai/fake", openai={"base_urls": [server.url], "timeout_s": 5})
    if name == "clean":
        cfg["store"] = str(tmp_path / "clean-store.sqlite")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _label_at(barrier: Any, done: Any, path: Path) -> None:
    """A labelling run in its own process, started when every process has reached the barrier."""
    cfg = load_config(path, LabelConfig)
    barrier.wait()
    try:
        done.put((str(path), asyncio.run(label(cfg)).model_dump(mode="json")))
    except BaseException as e:
        done.put((str(path), repr(e)))


def together(*paths: Path) -> dict[str, Any]:
    """Run `w2sg label`'s `label` on each config at the same moment, one process each."""
    barrier, done = FORK.Barrier(len(paths)), FORK.Queue()
    procs = [FORK.Process(target=_label_at, args=(barrier, done, p)) for p in paths]
    for p in procs:
        p.start()
    out = dict(done.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert all(isinstance(r, dict) for r in out.values()), out
    return out


@pytest.mark.parametrize("attempt", [1, 2])
def test_a_concurrent_run_against_a_broken_server_leaves_every_label_good(
    tmp_path: Path, server: FakeServer, attempt: int
) -> None:
    """Issue 27's case: two runs of one config (they differ only in where the model is served),
    one against a server that answers 500 to everything, slowly enough that its failures come
    last. Before, its failures replaced the healthy run's labels."""
    asyncio.run(label(load_config(served(tmp_path, server, "clean"), LabelConfig)))
    healthy = served(tmp_path, server, "healthy")
    with FakeServer() as broken:
        broken.reset(fault_rate=1.0, fault_kinds=["500"], latency_s=0.05)
        failing = served(tmp_path, broken, "failing")
        hashes = {load_config(p, LabelConfig).config_hash("x") for p in (healthy, failing)}
        assert len(hashes) == 1  # one labelling: the same rows of the store
        runs = together(healthy, failing)
    assert runs[str(healthy)]["failed"] == 0
    assert labels(tmp_path / "shared.sqlite") == labels(tmp_path / "clean-store.sqlite")  # 16 ok, as clean


def _open_each(barrier: Any, done: Any, folder: Path, tries: int) -> None:
    """Open (so create) store k, for each k, at the same moment as the other process."""
    errors = []
    for k in range(tries):
        barrier.wait()
        try:
            LabelStore(folder / f"new{k}.sqlite").close()
        except Exception as e:
            errors.append(repr(e))
    done.put(errors)


def test_two_processes_creating_one_store_at_once_both_succeed(tmp_path: Path) -> None:
    """Before, 'database is locked' in a few percent of these tries (12 of 30 in the issue)."""
    barrier, done = FORK.Barrier(2), FORK.Queue()
    procs = [FORK.Process(target=_open_each, args=(barrier, done, tmp_path, 200)) for _ in "ab"]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in done.get(timeout=120)]
    for p in procs:
        p.join(timeout=30)
    assert errors == []
    assert len(list(tmp_path.glob("new*.sqlite"))) == 200


# --- stores that cannot serve -------------------------------------------------------------------


def a_store(path: Path, rows: int = 3000) -> Path:
    """A real store of `rows` labels (with some transcript each), closed."""
    store = LabelStore(path)
    for i in range(rows):
        record = {"transcript": [{"text": f"turn {i} " * 40}]}
        store.put(
            LabelRow(
                example_id=f"q{i}", protocol="blind", config_hash="h", status="ok", p_true=0.5, record=record
            )
        )
    store.close()
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` and a hash of its bytes: what 'nothing written' compares."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def one_error(out: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in out.stderr, out.stderr
    text = out.stderr[out.stderr.index("error: ") :]
    for needle in needles:
        assert needle in text, (needle, text)
    return text


def record_cache(path: Path) -> None:
    """A models' record cache (another SQLite file of this project), closed."""
    cache = ResponseCache(path)
    cache.put("k", "m", "chat", "{}")
    cache.close()


def truncated(path: Path) -> None:
    data = a_store(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_STORES: dict[str, tuple[Callable[[Path], Any], str]] = {
    "truncated": (truncated, "is damaged (database disk image is malformed)"),
    "garbage": (lambda p: p.write_bytes(os.urandom(5000)), "not a SQLite database"),
    "text": (lambda p: p.write_text("my notes\n" * 50), "not a SQLite database"),
    "folder": (lambda p: p.mkdir(), "is a folder, not a store file"),
    "record cache": (record_cache, "a SQLite database of something else"),
}


@pytest.mark.parametrize("kind", list(BAD_STORES))
def test_a_store_that_cannot_serve_is_one_error_naming_it_and_nothing_is_written(
    tmp_path: Path, kind: str
) -> None:
    make, message = BAD_STORES[kind]
    folder = tmp_path / "stores"
    folder.mkdir()
    store = folder / "labels.sqlite"
    make(store)
    cfg = config(tmp_path, str(store), questions=2)
    before = snapshot(folder)
    one_error(w2sg("label", str(cfg)), f"error: {store}: {message}")
    assert snapshot(folder) == before


def _bound_by_permissions() -> None:
    """In the child about to run: root drops the capability to write what its permissions
    forbid (CAP_DAC_OVERRIDE), so a read-only file is read-only to it too."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(24, 1, 0, 0, 0)  # PR_CAPBSET_DROP, CAP_DAC_OVERRIDE: gone at the exec


def as_user(*args: str) -> subprocess.CompletedProcess[str]:
    """`w2sg ARGS` in a process whom file permissions bind."""
    return subprocess.run(
        [sys.executable, "-m", "oversight.cli", *args],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"}, timeout=300,
        preexec_fn=_bound_by_permissions,
    )  # fmt: skip


@pytest.fixture
def read_only_binds(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.write_text("")
    probe.chmod(0o444)
    wrote = subprocess.run(
        ["sh", "-c", f"echo x >> {probe}"], capture_output=True, preexec_fn=_bound_by_permissions
    )
    probe.unlink()
    if wrote.returncode == 0:
        pytest.skip("this user writes read-only files (root that cannot drop CAP_DAC_OVERRIDE)")


@pytest.mark.parametrize("where", ["file", "folder"])
def test_a_read_only_store_is_one_error_and_nothing_is_written(
    tmp_path: Path, read_only_binds: None, where: str
) -> None:
    folder = tmp_path / "stores"
    folder.mkdir()
    store = a_store(folder / "labels.sqlite", rows=20)
    cfg = config(tmp_path, str(store), questions=2)
    if where == "file":
        folder.chmod(0o777)
        store.chmod(0o444)
    else:
        store.chmod(0o666)
        folder.chmod(0o555)
    before = snapshot(folder)
    one_error(as_user("label", str(cfg)), f"error: {store}: cannot be opened for writing", "writable")
    assert snapshot(folder) == before


# --- export and web only read ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["empty", "text", "record cache"])
def test_export_refuses_a_file_that_is_not_a_label_store_untouched(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "notes.txt"
    if kind == "empty":
        path.touch()
    elif kind == "text":
        path.write_text("my notes\n")
    else:
        record_cache(path)
    before = snapshot(folder)
    text = one_error(w2sg("export", str(path), "--out", str(tmp_path / "out.jsonl")), f"error: {path}: ")
    assert "not a label store" in text or "an empty file" in text
    assert snapshot(folder) == before and not (tmp_path / "out.jsonl").exists()


def test_export_reads_a_store_without_writing_to_it_or_beside_it(
    tmp_path: Path, read_only_binds: None
) -> None:
    folder = tmp_path / "stores"
    folder.mkdir()
    store = a_store(folder / "labels.sqlite", rows=20)
    before, mtime = snapshot(folder), store.stat().st_mtime_ns
    out = w2sg("export", str(store), "--out", str(tmp_path / "a.jsonl"))
    assert out.returncode == 0 and "wrote 20 labels" in out.stdout, out.stderr
    assert snapshot(folder) == before and store.stat().st_mtime_ns == mtime  # no -wal or -shm left
    # A store in a folder its reader cannot write to exports too.
    folder.chmod(0o555)
    store.chmod(0o444)
    got = as_user("export", str(store), "--out", str(tmp_path / "b.jsonl"))
    assert got.returncode == 0 and "wrote 20 labels" in got.stdout, got.stderr
    assert snapshot(folder) == before
    # ... also while a writer has it open (read through SQLite's locks then).
    folder.chmod(0o777)
    writer = sqlite3.connect(store)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("UPDATE labels SET p_true = 0.25 WHERE example_id = 'q0'")
    writer.commit()
    out = w2sg("export", str(store), "--out", str(tmp_path / "c.jsonl"))
    writer.close()
    assert out.returncode == 0 and '"p_true": 0.25' in (tmp_path / "c.jsonl").read_text().splitlines()[0]


@pytest.mark.parametrize("kind", ["text", "garbage", "record cache"])
def test_web_refuses_to_serve_a_file_that_is_not_a_label_store(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "labels.sqlite"
    if kind == "text":
        path.write_text("my notes\n")
    elif kind == "garbage":
        path.write_bytes(os.urandom(5000))
    else:
        record_cache(path)
    before = snapshot(tmp_path)
    # Before, it started and served 500s (this would time out).
    one_error(w2sg("web", str(path), "--port", "1", timeout=60), f"error: {path}: ")
    assert snapshot(tmp_path) == before
