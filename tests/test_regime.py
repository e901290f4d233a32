"""Every report states its regime in words: a weak-to-strong gap beyond the intervals, a gap within
them (PGR mostly noise), or a supervisor at least as good as the ceiling (PGR undefined)."""

from __future__ import annotations

import numpy as np

from w2sg.metrics import Estimate, correct, mean_ci
from w2sg.report import pgr_cell, regime, regime_lines


def est(value: float, lo: float, hi: float) -> Estimate:
    return Estimate(value=value, lo=lo, hi=hi, n=100)


CEILING = est(0.70, 0.66, 0.74)


def test_regime_needs_the_ceiling_above_the_supervisor_beyond_both_intervals() -> None:
    assert regime(est(0.55, 0.51, 0.59), CEILING) == "gap"
    assert regime(est(0.64, 0.60, 0.68), CEILING) == "overlap"  # higher, but the intervals overlap
    assert regime(est(0.70, 0.66, 0.74), CEILING) == "above"
    assert regime(est(0.90, 0.87, 0.93), CEILING) == "above"


def test_cells_and_sentences_say_which() -> None:
    pgr = est(0.3, 0.1, 0.5)
    assert pgr_cell(pgr, est(0.55, 0.51, 0.59), CEILING) == "0.300 [0.100, 0.500]"
    assert pgr_cell(pgr, est(0.64, 0.60, 0.68), CEILING) == "0.300 [0.100, 0.500] (no gap)"
    assert pgr_cell(pgr, est(0.9, 0.87, 0.93), CEILING) == "n/a (supervisor ≥ ceiling)"
    lines = regime_lines(
        {"weak": est(0.55, 0.51, 0.59), "blind": est(0.64, 0.60, 0.68), "debate": est(0.9, 0.87, 0.93)},
        CEILING,
    )
    assert lines[0].startswith("Weak-to-strong gap for weak: the ceiling (0.700 [0.660, 0.740]) is above")
    assert lines[1].startswith("No gap beyond the intervals for blind:") and "mostly noise" in lines[1]
    assert lines[2].startswith("No weak-to-strong regime for debate: the supervisor is at least as accurate")
    assert regime_lines({"weak": est(0.55, 0.51, 0.59)}, CEILING)[0].startswith("Weak-to-strong gap")


def rows(gold: np.ndarray, says_true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p(true) and gold of a model that says true where `says_true`."""
    return np.where(says_true, 0.8, 0.2), gold


def test_chance_reason_names_one_class_or_chance_accuracy() -> None:
    from w2sg.report import chance_reason

    rng = np.random.default_rng(0)
    gold = np.tile([1.0, 0.0], 200)  # binarized: a true and a false answer per question
    q = np.repeat(np.arange(200), 2)
    learned = np.where(rng.random(400) < 0.85, gold > 0.5, gold < 0.5)
    assert chance_reason(*rows(gold, learned), q, n_boot=300) is None
    one_class = np.ones(400, dtype=bool)
    one_class[:8] = False  # true for 98% of rows
    assert chance_reason(*rows(gold, one_class), q, n_boot=300) == "predicts true for 98% of test rows"
    assert chance_reason(*rows(gold, ~one_class), q, rows="dev rows") == "predicts false for 98% of dev rows"
    # Both classes, but right on half the questions: its interval holds the constant's 0.5.
    coin = np.repeat(rng.random(200) < 0.5, 2) == (gold > 0.5)
    reason = chance_reason(*rows(gold, coin), q, n_boot=300)
    assert reason is not None and "contains a constant predictor's 0.500" in reason
    # Far below chance is informative (inverted), not constant.
    inverted = np.where(rng.random(400) < 0.85, gold < 0.5, gold > 0.5)
    assert chance_reason(*rows(gold, inverted), q, n_boot=300) is None


def test_a_constant_predictor_names_the_majority_class() -> None:
    from w2sg.report import chance_reason

    # 70% of rows true (a judge's rows need not be balanced): always saying true scores 0.7.
    gold = np.array([1.0] * 280 + [0.0] * 120)
    rng = np.random.default_rng(1)
    near_constant = (gold > 0.5) & (rng.random(400) < 0.9) | (gold < 0.5) & (rng.random(400) < 0.8)
    p, g = rows(gold, near_constant)  # says true on ~87% of rows, accuracy ~0.69
    ok = correct(p, g)
    assert 0.6 < ok.mean() < 0.8 and np.mean(p > 0.5) < 0.95
    assert chance_reason(p, g, n_boot=300) == (
        f"accuracy {mean_ci(ok, n_boot=300)} contains a constant predictor's 0.700"
    )
    better = np.where(rng.random(400) < 0.9, gold > 0.5, gold < 0.5)  # ~0.9: above the constant
    assert chance_reason(*rows(gold, better), n_boot=300) is None


def test_results_written_before_auc_load_and_render() -> None:
    import json
    from pathlib import Path

    from rich.console import Console

    from oversight.cli.train import summary
    from w2sg.report import markdown_table
    from w2sg.results import ExperimentResult

    e = {"value": 0.6, "lo": 0.55, "hi": 0.65, "n": 100}
    top = {**e, "value": 0.7, "lo": 0.66, "hi": 0.74}
    old = {  # a results.json of a run made before AUC and the collapse flag existed
        "run_id": "old-1",
        "ceiling": top,
        "sources": [
            {
                "source": "weak",
                "floor": {**e, "value": 0.55, "lo": 0.5, "hi": 0.58},
                "floor_split": "test",
                "labels": {"accuracy": e, "ece": 0.1, "brier": 0.2, "n": 100},
            }
        ],
        "students": [{"source": "weak", "loss": "xent", "accuracy": e, "pgr": e, "best_step": 3}],
        "sizes": {"test": 100},
        "seconds": 1.0,
    }
    r = ExperimentResult.model_validate_json(json.dumps(old))
    assert r.ceiling_auc is None and r.students[0].auc is None and r.students[0].collapsed is None
    table = markdown_table(r)
    assert "| weak |" in table and "ROC AUC" not in table and "Collapsed" not in table
    # Nor the chance flags: none is read as at chance, and the regime is read as before them.
    assert (
        r.ceiling_chance is None and r.sources[0].floor_chance is None and r.sources[0].labels_chance is None
    )
    assert "At chance" not in table and "Weak-to-strong gap for weak" in table
    console = Console(record=True, width=80)
    console.print(summary(r, Path("runs/old-1")))
    shown = console.export_text()
    assert "0.600 [.55,.65]" in shown and "AUC" not in shown.split("\n", 1)[0]


def test_a_student_whose_predictions_do_not_follow_its_labels_is_flagged_without_gold() -> None:
    # The logconf collapse: balanced predictions (no constant-predictor flag) that agree with the
    # student's own weak labels on val at chance. Gold is not needed to see it.
    from w2sg.report import unrelated_reason

    rng = np.random.default_rng(2)
    q = np.repeat(np.arange(200), 2)
    follows = (rng.random(400) < 0.64).astype(float)  # an xent student agreeing on 64% of val rows
    assert unrelated_reason(follows, q, n_boot=300) is None
    locked = (rng.random(400) < 0.5).astype(float)
    reason = unrelated_reason(locked, q, n_boot=300)
    assert reason is not None and reason.endswith("no more than chance")
    assert str(mean_ci(locked, q, n_boot=300)) in reason
