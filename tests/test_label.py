"""Labelling runs: every verdict lands in the durable store once; a SIGKILLed run resumes to exactly
the labels of a clean run; replay from the record cache rebuilds them; failures are recorded."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from cli import w2sg
from label_runs import labels, sigkill_midway


def config(tmp_path: Path, store: str, *, questions: int = 10, latency: float = 0.0, cache: str = "") -> Path:
    cache_line = f"    cache: {{path: {tmp_path / cache}, mode: record}}\n" if cache else ""
    text = f"""
split: test
questions: {questions}
concurrency: 4
store: {tmp_path / store}
models:
  deb:
    name: scripted/deb
    scripted:
      latency_s: {latency}
      rules:
        - {{match: 'You argue that the proposed answer is correct', reply: 'It is right.'}}
        - {{match: '.*', reply: 'It is wrong.'}}
{cache_line}  judge:
    name: scripted/judge
    scripted:
      latency_s: {latency}
      rules:
        - {{match: 'Proposed answer: [a-mA-M0-9]', probs: {{'Yes': 0.8, 'No': 0.2}}}}
        - {{match: 'Proposed answer: ', probs: {{'Yes': 0.3, 'No': 0.7}}}}
{cache_line}graph: {{kind: debate, protocol: sequential, rounds: 1, debater: deb, judge: judge}}
"""
    path = tmp_path / f"{store}.yaml"
    path.write_text(text)
    return path


def test_label_run_stores_every_row_once_and_a_rerun_adds_nothing(tmp_path: Path) -> None:
    cfg = config(tmp_path, "a.sqlite")
    out = w2sg("label", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "20 labelled, 0 failed, 0 already done, of 20" in out.stdout
    assert re.search(r"label accuracy 0\.\d+ \[0\.\d+, [01]\.\d+\] \(95% CI\), ECE", out.stdout)
    got = labels(tmp_path / "a.sqlite")
    assert len(got) == 20 and {p for p, _ in got.values()} == {0.8, 0.3}
    assert all(texts == ["It is right.", "It is wrong."] for _, texts in got.values())
    again = w2sg("label", str(cfg))
    assert "0 labelled, 0 failed, 20 already done, of 20" in again.stdout
    with sqlite3.connect(tmp_path / "a.sqlite") as db:
        assert db.execute("SELECT count(*) FROM labels").fetchone()[0] == 20
        record = db.execute("SELECT record FROM labels LIMIT 1").fetchone()[0]
    for field in ("protocol", "models", "seed", "config_hash", "verdict", "transcript"):
        assert f'"{field}"' in record


def test_a_sigkilled_run_resumes_to_exactly_the_clean_labels(tmp_path: Path) -> None:
    clean = config(tmp_path, "clean.sqlite", questions=15, latency=0.05)
    assert w2sg("label", str(clean)).returncode == 0
    cfg = config(tmp_path, "killed.sqlite", questions=15, latency=0.05)
    store = tmp_path / "killed.sqlite"
    n = sigkill_midway(cfg, store, after=6)
    assert 0 < n < 30, n
    out = w2sg("label", str(cfg))
    assert out.returncode == 0, out.stderr
    assert f"{30 - n} labelled, 0 failed, {n} already done, of 30" in out.stdout
    assert labels(store) == labels(tmp_path / "clean.sqlite")


def test_replay_rebuilds_labels_from_the_record_cache(tmp_path: Path) -> None:
    rec = config(tmp_path, "rec.sqlite", questions=5, cache="cache.sqlite")
    assert w2sg("label", str(rec)).returncode == 0
    rep = config(tmp_path, "rep.sqlite", questions=5, cache="cache.sqlite")
    out = w2sg("label", str(rep), "--replay")
    assert out.returncode == 0, out.stderr
    assert labels(tmp_path / "rep.sqlite") == labels(tmp_path / "rec.sqlite")
    # Rows never recorded fail loudly in replay, and are stored as failures with the reason.
    more = config(tmp_path, "more.sqlite", questions=8, cache="cache.sqlite")
    out = w2sg("label", str(more), "--replay")
    assert out.returncode == 1 and "6 failed" in out.stdout
    with sqlite3.connect(tmp_path / "more.sqlite") as db:
        errors = [r[0] for r in db.execute("SELECT error FROM labels WHERE status = 'failed'")]
    assert len(errors) == 6 and all("replay cache" in e for e in errors)
    nocache = config(tmp_path, "x.sqlite", questions=2)
    out = w2sg("label", str(nocache), "--replay")
    assert out.returncode == 2 and "needs a record cache" in out.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("graph: {protocol: blind}\n", "needs `kind:`"),
        ("graph: {kind: debate, protocol: blind}\nconcurrency: 0\n", "concurrency"),
        (
            "graph: {kind: debate, protocol: blind}\nconcurrency: 4\nrows_per_graph: 8\n",
            "exceeds concurrency",
        ),
        ("graph: {kind: interaction, max_followups: 1}\nrows_per_graph: 2\n", "routes on each reply"),
    ],
)
def test_bad_label_configs_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = w2sg("label", str(path))
    assert out.returncode == 2 and message in out.stderr and str(path) in out.stderr


def test_export_jsonl_with_provenance(tmp_path: Path) -> None:
    import importlib.util
    import json

    cfg = config(tmp_path, "e.sqlite", questions=3)
    assert w2sg("label", str(cfg)).returncode == 0
    out = w2sg("export", str(tmp_path / "e.sqlite"), "--out", str(tmp_path / "labels.jsonl"))
    assert out.returncode == 0 and "wrote 6 labels" in out.stdout
    rows = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and not (tmp_path / "labels.jsonl.tmp").exists()
    for r in rows:
        assert (
            r["status"] == "ok"
            and r["protocol"] == "sequential"
            and r["models"]
            == {
                "debater": "scripted/deb",
                "judge": "scripted/judge",
            }
        )
        assert r["verdict"]["tokens"] > 0 and len(r["transcript"]) == 2 and "seconds" in r["verdict"]
    bad = w2sg("export", str(tmp_path / "e.sqlite"), "--out", str(tmp_path / "x"), "--protocol", "blind")
    assert bad.returncode == 2 and "no labels for protocol=blind" in bad.stderr
    if importlib.util.find_spec("pyarrow") is None:
        pq = w2sg(
            "export", str(tmp_path / "e.sqlite"), "--out", str(tmp_path / "l.parquet"), "--format", "parquet"
        )
        assert pq.returncode == 2 and "pip install pyarrow" in pq.stderr


def test_export_parquet_and_hf_datasets_round_trip(tmp_path: Path) -> None:
    import json

    import datasets
    import pyarrow.parquet as pq

    cfg = config(tmp_path, "e.sqlite", questions=3)
    assert w2sg("label", str(cfg)).returncode == 0
    want = {r["example_id"]: r for r in map(json.loads, _export(tmp_path, "jsonl", "l.jsonl").splitlines())}
    _export(tmp_path, "parquet", "l.parquet")
    table = pq.read_table(tmp_path / "l.parquet").to_pylist()
    for _ in range(2):  # the second export replaces the first folder whole
        _export(tmp_path, "hf", "l-hf")
    hf = datasets.load_from_disk(str(tmp_path / "l-hf")).to_list()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary or old copy
    for rows in (table, hf):
        assert len(rows) == 6
        for r in rows:
            w = want[r["example_id"]]
            assert r["p_true"] == w["p_true"] and r["config_hash"] == w["config_hash"]
            assert r["models"] == w["models"] and r["seed"] == w["seed"]
            assert json.loads(r["transcript"]) == w["transcript"]  # nested columns travel as JSON
            assert json.loads(r["verdict"]) == w["verdict"]


def _export(tmp_path: Path, fmt: str, name: str) -> str:
    # --force: the second hf export replaces the first on purpose
    out = w2sg(
        "export", str(tmp_path / "e.sqlite"), "--out", str(tmp_path / name), "--format", fmt, "--force"
    )
    assert out.returncode == 0, out.stderr
    return (tmp_path / name).read_text() if fmt == "jsonl" else ""


def test_cost_per_label_from_the_models_prices(tmp_path: Path) -> None:
    import asyncio

    from agents import load_config
    from oversight.labelling.label import LabelConfig, label
    from oversight.labelling.store import LabelStore

    text = config(tmp_path, "c.sqlite", questions=2).read_text()
    text = text.replace(
        "    name: scripted/deb\n",
        "    name: scripted/deb\n    price: {input_per_mtok: 2, output_per_mtok: 8}\n",
    )
    text = text.replace(
        "    name: scripted/judge\n", "    name: scripted/judge\n    price: {input_per_mtok: 1}\n"
    )
    (tmp_path / "priced.yaml").write_text(text)
    cfg = load_config(tmp_path / "priced.yaml", LabelConfig)
    run = asyncio.run(label(cfg))
    store = LabelStore(cfg.store)
    rows = store.rows(cfg.protocol, run.config_hash)
    store.close()
    assert len(rows) == 4
    for r in rows:
        turns, verdict = r.record["transcript"], r.record["verdict"]
        judge_tokens = verdict["tokens"] - sum(t["tokens"] + t["input_tokens"] for t in turns)
        want = sum(2 * t["input_tokens"] + 8 * t["tokens"] for t in turns) / 1e6 + judge_tokens / 1e6
        assert judge_tokens > 0 and r.record["cost_usd"] == pytest.approx(want)


def test_other_data_is_never_served_old_labels(tmp_path: Path) -> None:
    # The same config over a data folder where one labelled row differs (its passage) gets a new
    # config hash: everything is labelled again, under the new key, beside the old labels.
    import json
    import shutil

    from w2sg.datasets import sciq_dir

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sciq_dir() / "test.jsonl", data / "test.jsonl")
    cfg = config(tmp_path, "d.sqlite", questions=3)
    cfg.write_text(cfg.read_text() + f"dataset: {{name: sciq, path: {data}}}\n")
    first = w2sg("label", str(cfg))
    assert "6 labelled" in first.stdout, first.stderr
    assert "6 already done" in w2sg("label", str(cfg)).stdout
    rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    for row in rows:  # every passage changes, so whichever questions are drawn, their rows differ
        row["support"] = row.get("support", "") + " Edited."
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = w2sg("label", str(cfg))
    assert "6 labelled, 0 failed, 0 already done" in again.stdout, again.stderr
    with sqlite3.connect(tmp_path / "d.sqlite") as db:
        assert db.execute("SELECT count(DISTINCT config_hash) FROM labels").fetchone()[0] == 2


@pytest.mark.parametrize("rows_per_graph", [1, 4])
async def test_a_failed_verdict_keeps_its_transcript(tmp_path: Path, rows_per_graph: int) -> None:
    """The judge's server is down: every row fails after the debate, and the store keeps what the
    debaters said. Batched, a batch whose every row failed ends (it used to loop to the recursion
    limit and sink the run)."""
    from agents import load_config
    from oversight.labelling.label import LabelConfig, label

    text = config(tmp_path, "dead.sqlite").read_text()
    text = text.replace(
        "graph: {kind: debate",
        "  dead: {name: 'openai/x@http://127.0.0.1:9/v1', retry: {max_attempts: 1}}\ngraph: {kind: debate",
    ).replace("judge: judge}", "judge: dead}")
    path = tmp_path / "dead.yaml"
    path.write_text(text.replace("concurrency: 4", f"concurrency: 4\nrows_per_graph: {rows_per_graph}"))
    run = await label(load_config(path, LabelConfig))
    assert run.failed == 20 and run.labelled == 0
    with sqlite3.connect(tmp_path / "dead.sqlite") as db:
        rows = db.execute("SELECT status, error, record FROM labels").fetchall()
    assert len(rows) == 20 and {r[0] for r in rows} == {"failed"}
    assert all("connection failed" in r[1] for r in rows)
    import json

    said = [[t["text"] for t in json.loads(r[2])["transcript"]] for r in rows]
    assert all(s == ["It is right.", "It is wrong."] for s in said)


# -- exports join back to the user's data ----------------------------------------------------------


def _label_file(data: Path, store: Path) -> None:
    """Label every row of `data` with a scripted blind judge, into `store`."""
    import asyncio

    from oversight.labelling.label import LabelConfig, label

    cfg = LabelConfig.model_validate(
        {
            "dataset": {"path": str(data)},
            "store": str(store),
            "models": {"judge": {"name": "scripted/judge"}},
            "graph": {"kind": "debate", "protocol": "blind", "judge": "judge"},
        }
    )
    assert asyncio.run(label(cfg)).labelled > 0


def _exports(tmp_path: Path, store: Path) -> tuple[list[dict], list[dict]]:
    """The store exported as JSONL and as CSV, read back."""
    import csv
    import json

    from oversight.labelling.export import export_rows, write_export

    rows = export_rows(store)
    jsonl = write_export(rows, tmp_path / f"{store.stem}.jsonl", "jsonl")
    with write_export(rows, tmp_path / f"{store.stem}.csv", "csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    return [json.loads(line) for line in jsonl.read_text().splitlines()], table


def test_exports_carry_the_source_id_and_columns(tmp_path: Path) -> None:
    import json

    from test_datasets import mc_records, write_csv, write_jsonl

    records = [{**r, "grade": 4 + i % 2, "meta": {"topic": "capitals"}} for i, r in enumerate(mc_records(3))]
    _label_file(write_jsonl(tmp_path / "mc.jsonl", records), tmp_path / "ids.sqlite")
    jsonl, table = _exports(tmp_path, tmp_path / "ids.sqlite")
    by_id = {r["id"]: r for r in records}
    assert len(jsonl) == len(table) == 6
    for row, flat in zip(jsonl, table, strict=True):
        want = {k: v for k, v in by_id[row["source_id"]].items() if k != "passage"}  # the passage stays out
        assert row["source"] == want and row["question"] == want["question"]  # nested in JSONL
        assert flat["example_id"] == row["example_id"] and flat["source_id"] == row["source_id"]
        assert flat["source.grade"] == str(want["grade"]) and flat["source.answerKey"] == want["answerKey"]
        # Flattened in CSV: a nested value as JSON.
        assert json.loads(flat["source.meta"]) == want["meta"] and "source.passage" not in flat
        assert len(json.loads(flat["transcript"])) == len(row["transcript"])
    # A file without an id column: its rows, from 0 (a CSV's first row under the header is 0).
    plain = [{"text": f"claim {i}", "label": str(i % 2), "note": f"n{i}"} for i in range(3)]
    _label_file(write_csv(tmp_path / "plain.csv", plain), tmp_path / "rows.sqlite")
    jsonl, table = _exports(tmp_path, tmp_path / "rows.sqlite")
    assert sorted(r["source_id"] for r in jsonl) == [0, 1, 2]
    assert all(r["source"] == plain[r["source_id"]] for r in jsonl)
    assert sorted(r["source_id"] for r in table) == ["0", "1", "2"]
    assert {r["source.note"] for r in table} == {"n0", "n1", "n2"}


def test_a_store_from_before_source_ids_still_exports(tmp_path: Path) -> None:
    """Labels stored without source ids (today's stores) export with source_id null; a store mixing
    them with new ones (string ids, row numbers) gives columnar exports one kind per column."""
    import pyarrow.parquet as pq

    from oversight.labelling.store import LabelRow, LabelStore

    store = LabelStore(tmp_path / "old.sqlite")
    old = {"question": "q", "answer": "a", "gold": 1, "verdict": {"p_true": 0.7}, "transcript": []}
    store.put(
        LabelRow(example_id="e0", protocol="blind", config_hash="h", status="ok", p_true=0.7, record=old)
    )
    store.close()
    jsonl, table = _exports(tmp_path, tmp_path / "old.sqlite")
    assert jsonl[0]["source_id"] is None and jsonl[0]["source"] == {} and jsonl[0]["p_true"] == 0.7
    assert table[0]["source_id"] == "" and not [k for k in table[0] if k.startswith("source.")]
    store = LabelStore(tmp_path / "old.sqlite")
    for i, sid in enumerate(("quartz-0", 3)):
        record = {**old, "source_id": sid, "source": {"id": sid, "para": "p", "n": i}}
        store.put(
            LabelRow(example_id=f"e{i + 1}", protocol="blind", config_hash="h", status="ok", record=record)
        )
    store.close()
    from oversight.labelling.export import export_rows, write_export

    got = pq.read_table(write_export(export_rows(tmp_path / "old.sqlite"), tmp_path / "m.parquet", "parquet"))
    rows = got.to_pylist()
    assert [r["source_id"] for r in rows] == [None, "quartz-0", "3"]  # one kind: text
    assert [r["source.n"] for r in rows] == [None, 0, 1] and [r["source.id"] for r in rows] == [
        None,
        "quartz-0",
        "3",
    ]


def test_label_refuses_a_graph_that_needs_a_passage_on_rows_without_one(tmp_path: Path) -> None:
    """Before any model runs or any store is made: the graph and the settings that need a passage."""
    import asyncio

    from test_datasets import write_csv

    from oversight.labelling.label import LabelConfig, label
    from w2sg.data import DataError

    data = write_csv(tmp_path / "plain.csv", [{"text": f"claim {i}", "label": str(i % 2)} for i in range(4)])
    debate = {"kind": "debate", "protocol": "sequential", "rounds": 1, "debater": "deb", "judge": "judge"}
    models = {"deb": {"name": "scripted/deb"}, "judge": {"name": "scripted/judge"}}
    store = tmp_path / "labels.sqlite"
    cfg = {"dataset": {"path": str(data)}, "store": str(store), "models": models, "graph": debate}
    with pytest.raises(
        DataError,
        match=r"none of the 4 rows of .*plain\.csv test has a passage, and protocol graph "
        r"\(debaters_see_context, verify_quotes\) needs a passage",
    ):
        asyncio.run(label(LabelConfig.model_validate(cfg)))
    assert not store.exists()
    # With those settings off the debate runs on the same rows.
    quiet = {**debate, "debaters_see_context": False, "verify_quotes": False}
    assert asyncio.run(label(LabelConfig.model_validate({**cfg, "graph": quiet}))).labelled == 4
