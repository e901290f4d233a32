"""`w2sg export --format inspect`: labels as inspect_ai eval logs that inspect_ai itself reads back
(one sample per label: question and answer as input, the transcript as messages, the verdict as
scores, provenance as metadata), one log per protocol and config hash."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli import w2sg
from test_label import config

from oversight.labelling.export import export_rows, write_export
from oversight.labelling.store import LabelRow, LabelStore

log_api = pytest.importorskip("inspect_ai.log")


def logs(folder: Path) -> dict[str, log_api.EvalLog]:
    """Each exported log, read back by inspect_ai, by file name."""
    return {p.name: log_api.read_eval_log(str(p)) for p in sorted(folder.glob("*.eval"))}


def test_labels_with_transcripts_read_back_with_inspect_ai(tmp_path: Path) -> None:
    cfg = config(tmp_path, "e.sqlite", questions=3)
    assert w2sg("label", str(cfg)).returncode == 0
    store = tmp_path / "e.sqlite"
    want = {r["example_id"]: r for r in export_rows(store)}
    out = w2sg("export", str(store), "--out", str(tmp_path / "logs"), "--format", "inspect")
    assert out.returncode == 0 and "wrote 6 labels" in out.stdout, out.stderr

    ((name, log),) = logs(tmp_path / "logs").items()
    chash = next(iter(want.values()))["config_hash"]
    assert name == f"sequential_{chash}.eval" and log.status == "success"
    assert log.eval.task == "w2sg/sequential" and log.eval.model == "scripted/judge"
    assert {s.id for s in log.samples} == set(want)  # one sample per label row
    for s in log.samples:
        w = want[s.id]
        assert w["question"] in s.input and w["answer"] in s.input and s.messages[0].content == s.input
        turns, verdict = s.messages[1:-1], s.messages[-1]
        assert [m.metadata["speaker"] for m in turns] == [t["speaker"] for t in w["transcript"]]
        assert [m.text.endswith(t["text"]) for m, t in zip(turns, w["transcript"], strict=True)] == [True] * 2
        assert {m.role for m in turns} == {"assistant"} and turns[0].model == "scripted/deb"
        assert verdict.metadata == w["verdict"] and f"{w['p_true']:.3f}" in verdict.text
        assert s.scores["p_true"].value == w["p_true"]
        assert s.scores["correct"].value == ("C" if (w["p_true"] >= 0.5) == bool(w["gold"]) else "I")
        assert s.target == ("true" if w["gold"] else "false")
        for key in ("protocol", "config_hash", "models", "seed", "source_id", "source", "gold"):
            assert s.metadata[key] == w[key], key
    accuracy = log.results.scores[0].metrics["accuracy"].value
    assert accuracy == sum(s.scores["correct"].value == "C" for s in log.samples) / 6
    assert "api_key" not in json.dumps([s.metadata for s in log.samples])


def test_a_store_without_transcripts_exports_one_log_per_protocol(tmp_path: Path) -> None:
    """Rows written straight into a store (no question, transcript nor gold; a failure among them)
    still export: input and score where there is a verdict, the error where there is none."""
    store = LabelStore(tmp_path / "s.sqlite")
    for protocol, p in (("blind", 0.25), ("consultancy", 0.75)):
        store.put(LabelRow(example_id="q1", protocol=protocol, config_hash="h/1", status="ok", p_true=p))
    store.put(LabelRow(example_id="q2", protocol="blind", config_hash="h/1", status="failed", error="boom"))
    store.close()
    write_export(export_rows(tmp_path / "s.sqlite"), tmp_path / "logs", "inspect")

    got = logs(tmp_path / "logs")
    assert list(got) == ["blind_h-1.eval", "consultancy_h-1.eval"]  # '/' never makes a sub-folder
    blind = {s.id: s for s in got["blind_h-1.eval"].samples}
    assert blind["q1"].scores["p_true"].value == 0.25 and "correct" not in blind["q1"].scores
    assert blind["q1"].input == "Proposed answer:" and blind["q1"].target == ""
    assert blind["q2"].scores is None and blind["q2"].messages[-1].text == "[failed] boom"
    assert got["consultancy_h-1.eval"].samples[0].scores["p_true"].value == 0.75


def test_inspect_export_is_a_folder_and_needs_inspect_ai(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{"example_id": "q", "protocol": "blind", "config_hash": "h", "status": "ok", "p_true": 0.5}]
    (tmp_path / "f").write_text("mine")
    with pytest.raises(ValueError, match="is a file, but --format inspect writes a folder"):
        write_export(rows, tmp_path / "f", "inspect", force=True)
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)  # as if inspect_ai were not installed
    with pytest.raises(ValueError, match=r"pip install 'w2sg-oversight\[inspect\]'"):
        write_export(rows, tmp_path / "logs", "inspect")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]  # nothing written, no temporary


def test_a_bad_format_is_one_error_naming_every_format(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "s.sqlite")
    store.put(LabelRow(example_id="q", protocol="blind", config_hash="h", status="ok", p_true=0.5))
    store.close()
    out = w2sg("export", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "x"), "--format", "xml")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "format must be jsonl, csv, parquet, hf, inspect, got 'xml'" in out.stderr
    assert not (tmp_path / "x").exists()
