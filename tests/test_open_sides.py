"""Open sides (`sides: open`): the protagonist's recorded choice scored against gold, the judge's
accuracy split by it (on a constructed store and through `w2sg label` with scripted models), and
default configs keeping their label hashes."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli import w2sg

from graphs.debate import DebateConfig
from oversight.labelling.label import LabelConfig
from oversight.labelling.open_sides import chosen_side, open_sides
from oversight.labelling.store import LabelRow, LabelStore


def record(side: str | None) -> dict:
    choice = (
        [{"speaker": "protagonist", "side": side, "round": 1, "kind": "choice", "text": "x"}] if side else []
    )
    return {
        "transcript": [*choice, {"speaker": "debater_correct", "side": "correct", "round": 1, "text": "y"}]
    }


def test_split_on_a_constructed_store(tmp_path: Path) -> None:
    # id: (question, gold, chosen side, judge p(true)). Chose right: a (correct on gold 1), d
    # (incorrect on gold 0); wrong: b, c. The judge is right on a, c, d and wrong on b; e has no choice.
    rows = {
        "a": ("q1", 1, "correct", 0.8),
        "b": ("q1", 0, "correct", 0.7),
        "c": ("q2", 1, "incorrect", 0.9),
        "d": ("q2", 0, "incorrect", 0.2),
        "e": ("q3", 1, None, 0.1),
    }
    store = LabelStore(tmp_path / "s.sqlite")
    for i, (_, _, side, p) in rows.items():
        store.put(
            LabelRow(
                example_id=i,
                protocol="sequential",
                config_hash="h",
                status="ok",
                p_true=p,
                record=record(side),
            )
        )
    got = {r.example_id: r for r in store.rows("sequential", "h")}
    store.close()
    ids = sorted(rows)
    split = open_sides(
        [got[i].record for i in ids],
        [got[i].p_true for i in ids],
        [rows[i][1] for i in ids],
        [rows[i][0] for i in ids],
        n_boot=200,
    )
    assert split is not None and split.n == 4
    assert split.choice_accuracy.value == pytest.approx(0.5)
    assert split.judge_chose_right is not None and split.judge_chose_right.value == 1.0
    assert split.judge_chose_right.n == 2
    assert split.judge_chose_wrong is not None and split.judge_chose_wrong.value == pytest.approx(0.5)
    assert "when it chose wrong 0.500" in split.lines()[0]
    assert chosen_side(record(None)) is None
    assert open_sides([record(None)], [0.5], [1]) is None  # assigned sides: nothing to split


def test_w2sg_label_reports_the_choice_and_the_split(tmp_path: Path) -> None:
    cfg = tmp_path / "open.yaml"
    cfg.write_text(f"""
split: test
questions: 4
store: {tmp_path / "o.sqlite"}
models:
  deb:
    name: scripted/deb
    scripted:
      rules:
        - {{match: 'Which side do you choose', reply: 'Correct'}}
        - {{match: 'You argue that the proposed answer is correct', reply: 'It is right.'}}
        - {{match: '.*', reply: 'It is wrong.'}}
  judge: {{name: scripted/judge, scripted: {{rules: [{{match: '.*', probs: {{'Yes': 0.8, 'No': 0.2}}}}]}}}}
graph: {{kind: debate, protocol: sequential, rounds: 1, sides: open, debater: deb, judge: judge}}
""")
    out = w2sg("label", str(cfg))
    assert out.returncode == 0, out.stderr
    # Each question has its gold answer and a distractor: always choosing "correct" is right on half,
    # and a judge always saying yes is right exactly where the protagonist was.
    assert "protagonist chose the gold side 0.500" in out.stdout, out.stdout
    assert "when it chose right 1.000" in out.stdout and "when it chose wrong 0.000" in out.stdout


def test_default_sides_keep_label_hashes() -> None:
    # Computed before `sides` existed (this branch's base).
    assert LabelConfig(graph=DebateConfig(protocol="sequential")).config_hash("data") == "dd428076eed4"
    assert LabelConfig(graph=DebateConfig(protocol="consultancy")).config_hash("data") == "753e096b4a61"
    opened = LabelConfig(graph=DebateConfig(protocol="sequential", sides="open")).config_hash("data")
    assert opened != "dd428076eed4"


def test_run_report_lists_the_split_of_open_sources() -> None:
    from oversight.experiments.run.report import oversight_lines
    from oversight.experiments.run.results import PipelineResult, SourceReport
    from w2sg.metrics import Estimate, LabelQuality

    split = open_sides([record("correct"), record("incorrect")], [0.9, 0.9], [1, 1], ["q1", "q2"], n_boot=50)
    acc = Estimate(value=0.5, lo=0.0, hi=1.0, n=2)
    raw = LabelQuality(accuracy=acc, ece=0.1, brier=0.2, n=2)
    src = SourceReport(source="open", kind="oversight", raw=raw, open_sides=split)
    text = "\n".join(oversight_lines(PipelineResult.model_construct(sources=[src], dropped_questions=[])))
    assert "Open sides" in text and "- open: protagonist chose the gold side 0.500" in text
    assert "when it chose right 1.000" in text and "when it chose wrong 1.000" in text
