"""Phase 2 ladder on the synthetic task (rung k sees more signal, so it is more capable by
construction): who learns from whom, where gold goes, the baseline, the oversight arm, resume after
a SIGKILL, config errors and the CLI. A wrapper around the real trainer records every fit."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from cli import ROOT, w2sg

from agents import ConfigError, load_config
from oversight.experiments.ladder.config import LadderConfig, ladder_splits
from oversight.experiments.ladder.results import LadderResult
from oversight.experiments.ladder.runner import FitFn, Fitted, RungFitter, run_ladder
from w2sg.data import Example, label_source
from w2sg.synthetic import OVERSEER

TRAIN = {"lr": 1e-2, "epochs": 3, "batch_size": 32, "eval_every": 10, "device": "cpu"}


def synthetic_config(out_dir: Path, **update: object) -> LadderConfig:
    raw = {
        "name": "ladder-test",
        "dataset": "synthetic",
        "val": 50,
        "test": 200,
        "rungs": [
            {"name": "weak", "questions": 100, "model": {"kind": "synthetic", "signal": 0.4}, "train": TRAIN},
            {"name": "mid", "questions": 200, "model": {"kind": "synthetic", "signal": 1.0}, "train": TRAIN},
            {"name": "top", "questions": 200, "model": {"kind": "synthetic", "signal": 1.8}, "train": TRAIN},
        ],
        "oversight": {"column": OVERSEER, "weight": 0.5},
        "n_boot": 100,
        "out_dir": str(out_dir),
        **update,
    }
    return LadderConfig.model_validate(raw)


@dataclass
class Call:
    rung: int
    role: str
    ids: list[str]
    labels: np.ndarray
    val_labels: np.ndarray
    outputs: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)  # row ids → p(true)


class Spy:
    """Records each fit's inputs and every prediction its model makes; can die at a rung."""

    def __init__(self, base: FitFn):
        self.base, self.calls = base, []

    def __call__(
        self, rung: int, rows: Sequence[Example], labels: np.ndarray, val_labels: np.ndarray, role: str
    ) -> Fitted:
        call = Call(rung, role, [e.id for e in rows], np.array(labels), np.array(val_labels))
        self.calls.append(call)
        fitted = self.base(rung, rows, labels, val_labels, role)  # type: ignore[arg-type]

        def predict(xs: Sequence[Example]) -> np.ndarray:
            out = fitted.predict(xs)
            call.outputs[tuple(e.id for e in xs)] = out
            return out

        return Fitted(predict, fitted.best_step)

    def output(self, call: Call, rows: Sequence[Example]) -> np.ndarray:
        return call.outputs[tuple(e.id for e in rows)]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # Tiny heads: threads only add overhead (7x on a busy 2-core machine).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class Ladder:
    cfg: LadderConfig
    sp: dict[str, list[Example]]
    spy: Spy
    result: LadderResult
    run_dir: Path


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> Ladder:
    cfg = synthetic_config(tmp_path_factory.mktemp("ladder"))
    sp = ladder_splits(cfg)
    spy = Spy(RungFitter(cfg, sp, str))
    result = run_ladder(cfg, fit=spy)
    return Ladder(cfg, sp, spy, result, cfg.out_dir / result.run_id)


def gold(rows: Sequence[Example]) -> np.ndarray:
    return np.asarray(label_source(rows, "gold"))


def students(spy: Spy, rung: int) -> list[Call]:
    return [c for c in spy.calls if c.rung == rung and c.role == "student"]


def test_capability_order_shows_in_ceilings(ladder: Ladder) -> None:
    ceilings = [next(x for x in ladder.result.results if x.rung == k).ceiling for k in range(3)]
    # Φ(0.4), Φ(1.0), Φ(1.8) = 0.66, 0.84, 0.96: each ceiling clears the one below by its CI.
    assert ceilings[0].value < ceilings[1].lo and ceilings[1].value < ceilings[2].lo
    assert 0.58 < ceilings[0].value < 0.74 and ceilings[2].value > 0.9
    report = (ladder.run_dir / "results.md").read_text()
    assert "Capability step at rung 1" in report and "Capability step at rung 2" in report


def test_report_says_when_a_rung_is_no_stronger(ladder: Ladder) -> None:
    from oversight.experiments.ladder.report import capability_lines

    r = ladder.result.model_copy(deep=True)
    rung2 = [x for x in r.results if x.rung == 2]
    for x in rung2:  # rung 2's ceiling made rung 1's: no step
        x.ceiling = next(y for y in r.results if y.rung == 1).ceiling
    lines = capability_lines(r)
    assert lines[0].startswith("Capability step at rung 1")
    assert lines[1].startswith("No capability step at rung 2") and "not above" in lines[1]


def test_each_rung_learns_from_the_previous_rungs_student(ladder: Ladder) -> None:
    sp, spy = ladder.sp, ladder.spy
    (rung0,) = [c for c in spy.calls if c.rung == 0]
    assert rung0.role == "gold"
    # Rung 1: the only student labels are rung 0's predictions on rung 1's rows (both arms).
    rung1 = [c for c in students(spy, 1) if np.array_equal(c.labels, spy.output(rung0, sp["rung1"]))]
    assert len(rung1) == 1
    assert np.array_equal(rung1[0].val_labels, spy.output(rung0, sp["val"]))
    # Rung 2's recursive student learns from rung 1's student's predictions on rung 2's rows.
    rung2 = [c for c in students(spy, 2) if np.array_equal(c.labels, spy.output(rung1[0], sp["rung2"]))]
    assert len(rung2) == 1 and rung2[0].ids == [e.id for e in sp["rung2"]]
    saved = np.load(ladder.run_dir / "labels.npz")
    assert np.array_equal(saved["labels__recursive__rung2"], rung2[0].labels)


def test_baseline_uses_rung0_labels_for_every_student(ladder: Ladder) -> None:
    sp, spy, saved = ladder.sp, ladder.spy, np.load(ladder.run_dir / "labels.npz")
    (rung0,) = [c for c in spy.calls if c.rung == 0]
    for k in (1, 2):
        assert np.array_equal(saved[f"labels__baseline__rung{k}"], spy.output(rung0, sp[f"rung{k}"]))
        assert any(np.array_equal(c.labels, saved[f"labels__baseline__rung{k}"]) for c in students(spy, k))
    # Rung 1's labels are the same in both arms, so one student serves both; rung 2's differ.
    assert len(students(spy, 1)) == 2 and len(students(spy, 2)) == 3  # + the oversight arm's
    assert not np.array_equal(saved["labels__baseline__rung2"], saved["labels__recursive__rung2"])
    by = {(x.rung, x.arm): x for x in ladder.result.results}
    assert (
        by[1, "baseline"].same_as == "recursive" and by[1, "baseline"].student == by[1, "recursive"].student
    )
    assert by[2, "baseline"].disagree_rung0 == 0.0 and by[2, "recursive"].disagree_rung0 > 0.1
    # By construction a better evaluator gives better labels: rung 1's student beats rung 0.
    assert by[2, "recursive"].labels.accuracy.value > by[2, "baseline"].labels.accuracy.value + 0.05


def test_gold_is_only_used_by_rung0_and_ceilings(ladder: Ladder) -> None:
    sp = ladder.sp
    test_ids = {e.id for e in sp["test"]}
    for c in ladder.spy.calls:
        rows = sp[f"rung{c.rung}"]
        assert c.ids == [e.id for e in rows] and not test_ids & set(c.ids)
        is_gold = np.array_equal(c.labels, gold(rows)) or np.array_equal(c.val_labels, gold(sp["val"]))
        assert is_gold == (c.role in ("gold", "ceiling")), c.role
    assert [c.rung for c in ladder.spy.calls if c.role == "gold"] == [0]
    assert sorted(c.rung for c in ladder.spy.calls if c.role == "ceiling") == [1, 2]


def test_oversight_arm_mixes_the_column_into_the_evaluators_labels(ladder: Ladder) -> None:
    sp, spy, saved = ladder.sp, ladder.spy, np.load(ladder.run_dir / "labels.npz")
    (rung0,) = [c for c in spy.calls if c.rung == 0]
    column = np.asarray(label_source(sp["rung1"], OVERSEER))
    assert np.allclose(saved["labels__oversight__rung1"], 0.5 * spy.output(rung0, sp["rung1"]) + 0.5 * column)
    (ov1,) = [c for c in students(spy, 1) if np.array_equal(c.labels, saved["labels__oversight__rung1"])]
    column2 = np.asarray(label_source(sp["rung2"], OVERSEER))
    assert np.allclose(saved["labels__oversight__rung2"], 0.5 * spy.output(ov1, sp["rung2"]) + 0.5 * column2)
    table = (ladder.run_dir / "results.md").read_text()
    assert "| oversight |" in table and "+ overseer (w=0.5)" in table
    assert (ladder.run_dir / "results.png").stat().st_size > 10_000


KILL_AT_RUNG_2 = """
import os, signal, sys, torch
torch.set_num_threads(1)
from oversight.experiments.ladder.runner import RungFitter, run_ladder
from oversight.experiments.ladder.config import LadderConfig, ladder_splits
cfg = LadderConfig.model_validate_json(open(sys.argv[1]).read())
base = RungFitter(cfg, ladder_splits(cfg), str)
def fit(rung, *args):
    if rung == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # a crash: no cleanup, no exception handlers
    return base(rung, *args)
run_ladder(cfg, fit=fit)
"""


def test_resume_after_a_kill_does_not_retrain_finished_rungs(ladder: Ladder, tmp_path: Path) -> None:
    cfg = ladder.cfg.model_copy(update={"out_dir": tmp_path})
    (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT_RUNG_2, str(tmp_path / "cfg.json")], cwd=ROOT, timeout=120
    )
    run_dir = tmp_path / ladder.result.run_id
    assert proc.returncode == -9 and not (run_dir / "results.json").exists()
    assert (run_dir / "checkpoints.sqlite").exists()
    spy = Spy(RungFitter(cfg, ladder_splits(cfg), str))
    resumed = run_ladder(cfg, fit=spy)
    assert {c.rung for c in spy.calls} == {2}  # rungs 0 and 1 came from the checkpoint
    assert resumed.results == ladder.result.results
    a, b = np.load(run_dir / "predictions.npz"), np.load(ladder.run_dir / "predictions.npz")
    assert a.files == b.files and all(np.array_equal(a[f], b[f]) for f in a.files)
    # A complete run folder is loaded, not rerun.
    again = Spy(RungFitter(cfg, ladder_splits(cfg), str))
    assert run_ladder(cfg, fit=again).results == resumed.results and again.calls == []


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"rungs": [{"name": "a", "questions": 5, "model": {"kind": "synthetic", "signal": 1}}]}, "rungs"),
        ({"dataset": "nope"}, "dataset"),
        ({"rungs.1.model.kind": "features"}, "rungs.1.model"),
        ({"rungs.1.model.kind": "lstm"}, "rungs.1.model"),
        ({"rungs.2.questions": 0}, "rungs.2.questions"),
        ({"rungs.0.train.lr": -1}, "rungs.0.train.lr"),
        ({"oversight.weight": 0}, "oversight.weight"),
        ({"rungs.1.name": "weak"}, "rungs: names must be unique"),
        ({"extra_field": 1}, "extra_field"),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, patch: dict[str, object], message: str) -> None:
    raw = json.loads(synthetic_config(tmp_path).model_dump_json())
    for dotted, value in patch.items():
        *path, last = dotted.split(".")
        node = raw
        for part in path:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value
    if "rungs.1.model.kind" in patch:
        raw["rungs"][1]["model"].pop("signal", None)
        raw["rungs"][1]["model"]["path"] = "embedded/minilm"
    path = tmp_path / "ladder.yaml"
    path.write_text(json.dumps(raw))  # JSON is YAML
    with pytest.raises(ConfigError) as err:
        load_config(path, LadderConfig)
    assert str(path) in str(err.value) and message in str(err.value)


def test_oversight_column_missing_from_the_data_is_named(tmp_path: Path) -> None:
    cfg = synthetic_config(tmp_path, oversight={"column": "no_such_column"})
    with pytest.raises(ValueError, match=r"oversight\.column: .*no_such_column"):
        run_ladder(cfg)


def test_cli_runs_a_tiny_ladder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the CLI's torch, in a subprocess: see one_thread
    raw = json.loads(synthetic_config(tmp_path).model_dump_json())
    raw.update(val=20, test=50, oversight=None, baseline=False, rungs=raw["rungs"][:2])
    raw["rungs"][0]["questions"], raw["rungs"][1]["questions"] = 40, 60
    (tmp_path / "tiny.yaml").write_text(json.dumps(raw))
    out = tmp_path / "elsewhere"
    proc = w2sg("ladder", str(tmp_path / "tiny.yaml"), "--out", str(out), "--track", "tensorboard")
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = out.iterdir()
    files = {"results.json", "results.md", "results.png", "predictions.npz", "labels.npz", "curves.png"}
    assert files <= {p.name for p in run_dir.iterdir()}
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))  # --track tensorboard
    assert "| 1 | mid | recursive | rung 0 (weak) |" in proc.stdout and str(run_dir) in proc.stdout
    bad = w2sg("ladder", str(tmp_path / "missing.yaml"))
    assert bad.returncode == 2 and "missing.yaml" in bad.stderr


def test_the_run_folder_is_named_by_config_and_data(ladder: Ladder) -> None:
    import json

    from w2sg.data import fingerprint

    recorded = json.loads((ladder.run_dir / "config.json").read_text())
    assert recorded["data"]["fingerprint"] == fingerprint(ladder.sp)
    assert ladder.result.run_id == ladder.cfg.run_id(fingerprint(ladder.sp))
    # Other rows (one test row's gold flipped) give another folder for the same config.
    other = dict(ladder.sp)
    other["test"] = [
        other["test"][0].model_copy(update={"label": 1 - other["test"][0].label}),
        *other["test"][1:],
    ]
    assert ladder.cfg.run_id(fingerprint(other)) != ladder.result.run_id
    # Interval of the rung-2 students: a bootstrap over questions.
    from w2sg.metrics import correct, mean_ci

    z = np.load(ladder.run_dir / "predictions.npz")
    res = next(x for x in ladder.result.results if x.rung == 2 and x.arm == "recursive")
    ok = correct(z["student__recursive__rung2"], z["gold"])
    assert res.student == mean_ci(ok, z["qids"], n_boot=ladder.cfg.n_boot, seed=ladder.cfg.seed)
