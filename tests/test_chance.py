"""Chance flags and the weak-to-strong regime rule, on constructed predictions (no models): a model
indistinguishable from chance or from a constant predictor is named in every report (`w2sg train`,
`w2sg run`, the console), and a regime needs a gap beyond the intervals of at least MIN_GAP with
neither the floor nor the ceiling at chance."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from oversight.experiments.run.report import pipeline_table
from oversight.experiments.run.results import PipelineResult, SourceReport
from oversight.labelling.judges import JudgeInfo
from w2sg.experiment import score_models
from w2sg.methods import Vanilla
from w2sg.metrics import Estimate, label_quality
from w2sg.report import (
    MIN_GAP,
    chance_reason,
    markdown_table,
    pgr_cell,
    regime,
    regime_lines,
    seeds_table,
)
from w2sg.results import ExperimentResult, SeedRun, SeedsResult, SeedsSource, SeedsStudent, SeedStat

Q = 300  # questions per split, two rows each (a true and a false answer): balanced, as binarized data
GOLD = np.tile([1.0, 0.0], Q)
QIDS = np.repeat(np.arange(Q), 2)


def est(value: float, lo: float, hi: float) -> Estimate:
    return Estimate(value=value, lo=lo, hi=hi, n=600)


def informative(acc: float, seed: int) -> np.ndarray:
    """p(true) of a model right on about `acc` of the rows, with confidences spread over (0, 1)."""
    rng = np.random.default_rng(seed)
    right = rng.random(len(GOLD)) < acc
    says_true = np.where(right, GOLD > 0.5, GOLD < 0.5)
    conf = rng.uniform(0.55, 0.95, len(GOLD))
    return np.where(says_true, conf, 1.0 - conf)


def at_chance(seed: int) -> np.ndarray:
    """The QuaRTz blind judge: every p(true) within [0.493, 0.514], unrelated to gold."""
    return np.random.default_rng(seed).uniform(0.493, 0.514, len(GOLD))


# -- the flag ----------------------------------------------------------------------------------


def test_a_model_at_chance_is_flagged_on_accuracy_and_auc_and_its_spread_named() -> None:
    reason = chance_reason(at_chance(0), GOLD, QIDS, n_boot=300)
    assert reason is not None
    assert "contains a constant predictor's 0.500" in reason
    assert "contains chance's 0.5" in reason  # its AUC
    assert "a spread under 0.05" in reason  # p(true) barely vary


def test_a_coin_with_confident_p_is_flagged_by_its_intervals_not_its_spread() -> None:
    coin = np.random.default_rng(1).uniform(0.0, 1.0, len(GOLD))
    reason = chance_reason(coin, GOLD, QIDS, n_boot=300)
    assert reason is not None and "AUC" in reason and "spread" not in reason


def test_a_constant_predictor_is_flagged() -> None:
    # Names true on nearly every row: a constant, whatever its p(true).
    p = np.full(len(GOLD), 0.7)
    p[:10] = 0.3
    assert chance_reason(p, GOLD, QIDS, n_boot=300) == "predicts true for 98% of test rows"
    # Both classes, p(true) within a 0.02 band and unrelated to gold: a constant up to noise.
    flat = 0.5 + 0.01 * np.sin(np.arange(len(GOLD)))
    reason = chance_reason(flat, GOLD, QIDS, n_boot=300)
    assert reason is not None and reason.startswith("accuracy ")
    assert reason.endswith("within [0.490, 0.510], a spread under 0.05")


def test_p_true_that_barely_vary_alone_do_not_flag_a_model_that_is_right() -> None:
    # Under-confident but right on ~70% of rows (as an early fine-tuned student can be): its spread
    # is under MIN_SPREAD, its accuracy and AUC far from chance.
    p = 0.5 + 0.01 * (2 * informative(0.70, 14) - 1)
    lo, hi = np.percentile(p, [5, 95])
    assert hi - lo < 0.05
    assert chance_reason(p, GOLD, QIDS, n_boot=300) is None


def test_an_informative_model_is_not_flagged() -> None:
    assert chance_reason(informative(0.70, 2), GOLD, QIDS, n_boot=300) is None
    # A weak but real supervisor, as SciQ's weak floor (0.57).
    assert chance_reason(informative(0.60, 3), GOLD, QIDS, n_boot=300) is None
    # Inverted (far below chance) carries information: not flagged.
    assert chance_reason(1.0 - informative(0.8, 4), GOLD, QIDS, n_boot=300) is None


# -- the regime rule ---------------------------------------------------------------------------


def test_sciq_reference_figures_read_as_a_regime() -> None:
    # docs/results.md: the w2sg-sciq run on test and on dev, and the fine-tuned MiniLM teacher option.
    assert regime(est(0.574, 0.554, 0.595), est(0.707, 0.683, 0.730)) == "gap"
    assert regime(est(0.573, 0.554, 0.594), est(0.693, 0.668, 0.717)) == "gap"
    assert regime(est(0.641, 0.615, 0.667), est(0.693, 0.668, 0.717)) == "gap"


def test_disjoint_intervals_below_the_minimum_gap_are_not_a_regime() -> None:
    # A large test split: narrow intervals, disjoint, yet a 2-point gap.
    floor, ceiling = est(0.600, 0.596, 0.604), est(0.620, 0.616, 0.624)
    assert ceiling.lo > floor.hi and ceiling.value - floor.value < MIN_GAP
    assert regime(floor, ceiling) == "small"
    assert pgr_cell(est(0.5, 0.2, 0.8), floor, ceiling) == "0.500 [0.200, 0.800] (gap < 0.03)"
    (line,) = regime_lines({"weak": floor}, ceiling)
    assert line.startswith("No weak-to-strong regime for weak: the ceiling (0.620 [0.616, 0.624])")
    assert "by less than 0.03 (the minimum gap)" in line


def test_the_regime_line_states_its_rule_and_a_floor_at_chance_reads_no_regime() -> None:
    # The QuaRTz figures: intervals that do not overlap (0.502 / 0.510), a floor at chance.
    floor, ceiling = est(0.483, 0.464, 0.502), est(0.537, 0.510, 0.563)
    assert regime(floor, ceiling) == "gap"  # by intervals and gap alone it would read as one
    assert regime(floor, ceiling, chance=True) == "chance"
    (line,) = regime_lines({"weak": floor}, ceiling, chance={"weak": "the supervisor"})
    assert line.startswith("No weak-to-strong regime can be read for weak: against the ceiling (")
    assert "the supervisor is indistinguishable from chance" in line
    assert pgr_cell(est(0.1, -0.5, 0.6), floor, ceiling, chance=True).endswith("(at chance)")
    (both,) = regime_lines({"weak": floor}, ceiling, chance={"weak": "the supervisor and the ceiling"})
    assert "the supervisor and the ceiling are indistinguishable" in both
    (clear,) = regime_lines({"weak": est(0.574, 0.554, 0.595)}, est(0.707, 0.683, 0.730))
    assert clear.startswith("Weak-to-strong gap for weak:")
    assert "beyond the 95% intervals and by at least 0.03 (the minimum gap)" in clear
    assert "neither is at chance" in clear


# -- the reports, from score_models on constructed predictions ---------------------------------


class FakeFitter:
    """What `score_models` asks of a `Fitter`, with no model: `fit` returns the name of the model
    asked for, `predict` that model's constructed p(true) on the split it is given."""

    def __init__(self, preds: dict[str, np.ndarray]):
        self.cfg = SimpleNamespace(
            n_boot=200, seed=0, losses=["xent"], methods=[Vanilla()], select_on="source"
        )
        self.gold = {k: GOLD for k in ("strong", "val", "test")}
        self.qids = {k: QIDS for k in self.gold}
        self.sp: dict[str, list[Any]] = {k: [None] * len(GOLD) for k in self.gold}
        self.preds = preds

    def fit(
        self, role: str, rows: Any, labels: Any, val: Any, loss: str = "xent", what: str = "", **_: Any
    ) -> Any:
        return what, 0

    def predict(self, role: str, model: str, rows: list[Any]) -> np.ndarray:
        assert any(v is rows for v in self.sp.values())  # one of the splits, as score_models passes them
        return self.preds[model]


def experiment(weak: np.ndarray, ceiling: np.ndarray, *, judge: np.ndarray | None = None) -> ExperimentResult:
    """score_models on: a weak teacher with `weak` p(true) on every split, a `blind` trained
    judge's labels (strong and val only, as an oversight graph: floored on the strong split) when
    given, the ceiling, and students that copy their labels."""
    preds = {"ceiling": ceiling, "student on weak": weak}
    supervisors = {"weak": {k: weak for k in ("strong", "val", "test")}}
    if judge is not None:
        preds["student on blind"] = judge
        supervisors["blind"] = {k: judge for k in ("strong", "val")}
    scores = score_models(FakeFitter(preds), supervisors)  # type: ignore[arg-type]
    return scores.result("chance-test", [], {"strong": 600, "val": 600, "test": 600}, 1.0)


@pytest.fixture(scope="module")
def quartz() -> ExperimentResult:
    """The QuaRTz run: a weak floor at chance under an informative ceiling, a blind judge at chance."""
    return experiment(at_chance(5), informative(0.70, 6), judge=at_chance(7))


def test_score_models_flags_the_floor_labels_student_and_not_the_ceiling(quartz: ExperimentResult) -> None:
    weak, blind = quartz.sources
    assert quartz.ceiling_chance is None
    assert weak.floor_chance is not None and weak.labels_chance is not None
    assert blind.floor_split == "strong" and blind.floor_chance == blind.labels_chance is not None
    assert all(s.collapsed for s in quartz.students)  # students that copy chance labels


def test_w2sg_train_report_names_every_model_at_chance(quartz: ExperimentResult) -> None:
    table = markdown_table(quartz)
    assert "Weak-to-strong gap for" not in table
    assert "No weak-to-strong regime can be read for weak, blind: against the ceiling (" in table
    assert "At chance: weak's floor (test): accuracy " in table and "a spread under 0.05." in table
    assert "At chance: weak's labels (strong split, as its students learn them): " in table
    assert "At chance: blind's floor and labels (strong split): " in table
    assert "At chance: the ceiling" not in table
    assert "(at chance)" in table and "Collapsed student weak · xent" in table


def test_a_clear_regime_passes_and_flags_nothing() -> None:
    r = experiment(informative(0.60, 8), informative(0.78, 9))
    assert r.ceiling_chance is None and r.sources[0].floor_chance is None
    assert r.sources[0].labels_chance is None and r.students[0].collapsed is None
    table = markdown_table(r)
    assert "Weak-to-strong gap for weak: the ceiling (" in table
    assert "At chance" not in table and "(at chance)" not in table


def test_a_ceiling_at_chance_reads_no_regime_for_any_supervisor() -> None:
    r = experiment(informative(0.65, 10), at_chance(11))
    assert r.ceiling_chance is not None and r.sources[0].floor_chance is None
    table = markdown_table(r)
    assert "No weak-to-strong regime can be read for weak: against the ceiling (" in table
    assert "the ceiling is indistinguishable from chance" in table
    assert "At chance: the ceiling (test): " in table


def test_w2sg_run_report_flags_a_trained_judge_at_chance(quartz: ExperimentResult) -> None:
    judge = JudgeInfo(
        path=Path("judges/blind"),
        protocol="blind",
        base="embedded/minilm",
        rows={"train": 240, "val": 60},
        val_accuracy=0.55,
        heldout_accuracy=0.5,
        heldout_rows=200,
        max_length=256,
        qids=[],
    )
    raw = {
        name: label_quality(p, GOLD, QIDS, n_boot=200)
        for name, p in (("weak", at_chance(5)), ("blind", at_chance(7)))
    }
    r = PipelineResult(
        run_id=quartz.run_id,
        experiment=quartz,
        sources=[
            SourceReport(source="weak", kind="teacher", raw=raw["weak"]),
            SourceReport(source="blind", kind="oversight", raw=raw["blind"], judge=judge),
        ],
        stage_seconds={"students": 1.0},
    )
    table = pipeline_table(r)
    assert "No weak-to-strong regime can be read for weak, blind" in table
    assert "Weak-to-strong gap for" not in table
    (line,) = [x for x in table.splitlines() if x.startswith("- blind: fine-tuned")]
    assert "accuracy 0.500 on the 200 calib rows" in line
    assert "; at chance by its verdicts on the strong split: accuracy " in line and "AUC" in line
    # The flags travel in results.json, and a results.json written before them still loads.
    data = json.loads(r.model_dump_json())
    assert data["experiment"]["sources"][1]["labels_chance"] == quartz.sources[1].labels_chance
    for key in ("ceiling_chance", "ceiling_chance_dev"):
        del data["experiment"][key]
    for s in data["experiment"]["sources"]:
        for key in ("floor_chance", "floor_chance_dev", "labels_chance"):
            del s[key]
    old = PipelineResult.model_validate_json(json.dumps(data))
    assert old.experiment.sources[1].labels_chance is None
    old_table = pipeline_table(old)
    assert "At chance" not in old_table and "at chance by its verdicts" not in old_table


def test_the_console_summary_says_it(quartz: ExperimentResult) -> None:
    from rich.console import Console

    from oversight.cli.train import summary

    console = Console(record=True, width=200)
    console.print(summary(quartz, Path("runs/chance-test")))
    shown = console.export_text()
    assert "No weak-to-strong regime can be read for weak, blind" in shown
    assert "At chance: weak's floor (test)" in shown and "³ at chance" in shown


def test_the_seeds_report_reads_no_regime_over_a_seed_at_chance(quartz: ExperimentResult) -> None:
    clear = experiment(informative(0.60, 12), informative(0.78, 13))
    stat = SeedStat(mean=est(0.55, 0.5, 0.6), sd=0.01, per_seed=[0.5, 0.6])
    top = SeedStat(mean=est(0.74, 0.72, 0.76), sd=0.01, per_seed=[0.7, 0.78])
    r = SeedsResult(
        run_id="seeds-1",
        seeds=[0, 1],
        runs=[SeedRun(seed=0, result=clear), SeedRun(seed=1, result=quartz)],
        ceiling=top,
        ceiling_auc=top,
        sources=[SeedsSource(source="weak", floor_split="test", floor=stat, floor_auc=stat)],
        students=[
            SeedsStudent(
                source="weak", loss="xent", accuracy=stat, auc=stat, pgr=stat.mean, auc_pgr=stat.mean
            )
        ],
        n_boot=200,
        seconds=1.0,
    )
    table = seeds_table(r)
    assert "No weak-to-strong regime can be read for weak: against the seed-mean ceiling (" in table
    assert "the supervisor (seed 1) is indistinguishable from chance" in table
    assert "At chance in seed 1: weak's floor (test): " in table
    assert "At chance in seed 0" not in table
