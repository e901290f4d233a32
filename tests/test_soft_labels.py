"""Calibration and aggregation of verdicts into soft labels, on data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oversight.labelling.soft_labels import (
    Calibrator,
    DawidSkene,
    average_weights,
    cross_fit,
    skill_weights,
    weighted_average,
)
from w2sg.metrics import ece


def overconfident(n: int, seed: int, temperature: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from a true p; the source reports p sharpened by `temperature` on the log-odds."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    return 1 / (1 + np.exp(-temperature * z)), y


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_calibration_fixes_an_overconfident_source_out_of_sample(method: str) -> None:
    p_fit, y_fit = overconfident(3000, 0)
    p_new, y_new = overconfident(3000, 1)
    cal = Calibrator(method).fit(p_fit, y_fit)
    before, after = ece(p_new, y_new), ece(cal(p_new), y_new)
    assert after < before / 2 and after < 0.04, (before, after)
    # Monotone: calibration never flips which of two rows is more likely true.
    grid = np.linspace(0.01, 0.99, 50)
    assert np.all(np.diff(cal(grid)) >= -1e-12)


def test_temperature_recovers_the_sharpening_factor() -> None:
    p, y = overconfident(20000, 2, temperature=3.0)
    cal = Calibrator("temperature").fit(p, y)
    assert cal.a == pytest.approx(1 / 3, rel=0.1)  # undoes the ×3 on the log-odds


def test_isotonic_by_hand_and_bad_input() -> None:
    # Sorted p: 0.1 (y 0), 0.2 (1), 0.3 (0), 0.9 (1): the middle pair violates and pools to 0.5.
    cal = Calibrator("isotonic").fit([0.9, 0.2, 0.1, 0.3], [1, 1, 0, 0])
    assert cal(np.array([0.1, 0.25, 0.3, 0.9])) == pytest.approx([1e-6, 0.5, 0.5, 1 - 1e-6], abs=1e-5)
    with pytest.raises(ValueError, match="calibration must be"):
        Calibrator("magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 2 rows"):
        Calibrator("platt").fit([0.5], [1])


def test_weighted_average_and_skill_weights() -> None:
    s = np.array([[0.9, 0.2], [0.5, 0.5]])
    assert weighted_average(s, [3, 1]) == pytest.approx([0.8, 0.275])
    w = skill_weights(s, [1, 0])
    assert w[1] == 0.0 and w[0] == pytest.approx(math.log(2) + (math.log(0.9) + math.log(0.8)) / 2)
    with pytest.raises(ValueError, match="non-negative"):
        weighted_average(s, [0, 0])


def test_dawid_skene_learns_which_sources_to_trust() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    y = rng.random(n) < 0.5
    accuracies = [0.9, 0.75, 0.6, 0.55, 0.55]
    votes = np.stack([np.where(rng.random(n) < a, y, ~y) for a in accuracies]).astype(float)
    model = DawidSkene().fit(votes)
    post, params = model(votes), model.params
    ds_acc = np.mean((post > 0.5) == y)
    majority_acc = np.mean((votes.mean(0) > 0.5) == y)
    assert ds_acc > majority_acc + 0.02 and ds_acc >= 0.88
    # The learnt rates match each source's realised rates on this sample.
    assert params["sensitivity"] == pytest.approx(votes[:, y].mean(1), abs=0.03)
    assert params["specificity"] == pytest.approx(1 - votes[:, ~y].mean(1), abs=0.03)


def test_isotonic_pools_tied_inputs_before_pav() -> None:
    # Three rows at 0.1 (one true) and four at 0.9 (three true): tied rows share one value, their
    # frequency. Without pooling, PAV split the 0.9 block and gave cal(0.9) = 1.
    cal = Calibrator("isotonic").fit([0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9], [0, 0, 1, 1, 1, 0, 1])
    assert cal(np.array([0.1, 0.9])) == pytest.approx([1 / 3, 0.75])


def test_isotonic_on_a_two_valued_overseer_keeps_false_verdicts_false() -> None:
    # A simulated overseer right 70% of the time says 0.2 or 0.8; 50 calibration questions. The
    # calibrated "false" verdict is the share of true rows among them (~0.3): above 0.5 only by rare
    # bad luck (17.7% of runs before ties were pooled).
    flipped = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, 100)
        said_true = np.where(rng.random(100) < 0.7, y, 1 - y)
        p = np.where(said_true == 1, 0.8, 0.2)
        flipped += Calibrator("isotonic").fit(p, y)(np.array([0.2]))[0] > 0.5
    assert flipped / 300 < 0.02


def test_cross_fit_scores_each_row_with_a_calibrator_fitted_on_the_other_folds() -> None:
    rng = np.random.default_rng(0)
    n = 200
    y = rng.integers(0, 2, n).astype(float)
    groups = np.repeat(np.arange(n // 2), 2)
    noise = rng.random((1, n))  # a source with no signal at all
    oof = cross_fit(noise, y, groups, "isotonic", folds=5, seed=0)
    in_sample = Calibrator("isotonic").fit(noise[0], y)(noise[0])
    # In sample, isotonic fits the noise and looks skilled; out of fold it does not.
    assert skill_weights(in_sample[None], y)[0] > 0.02
    assert skill_weights(oof, y)[0] < skill_weights(in_sample[None], y)[0] / 3
    # Folds are whole questions: a question's rows are scored by one calibrator. With Platt on a
    # constant-per-question input, both rows of a question then get the same value.
    const = np.repeat(rng.random(n // 2), 2)[None]
    again = cross_fit(const, y, groups, "platt", folds=5, seed=0)
    assert np.array_equal(again[0, ::2], again[0, 1::2])
    with pytest.raises(ValueError, match=">= 2 calibration questions"):
        cross_fit(noise[:, :2], y[:2], np.array([7, 7]), "platt")


def test_average_weights_fall_back_to_uniform_when_no_source_beats_chance() -> None:
    y = np.array([1.0, 0.0, 1.0, 0.0])
    worse = np.array([[0.3, 0.7, 0.4, 0.6], [0.5, 0.5, 0.5, 0.5]])
    w, note = average_weights(worse, y)
    assert w.tolist() == [1.0, 1.0] and note and "uniform" in note
    w, note = average_weights(np.array([[0.9, 0.1, 0.8, 0.2], [0.5, 0.5, 0.5, 0.5]]), y)
    assert w[0] > 0 and w[1] == 0 and note is None


def test_dawid_skene_fitted_once_applies_to_any_split() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(3000) < 0.5
    votes = np.stack([np.where(rng.random(3000) < a, y, ~y) for a in (0.9, 0.7, 0.6)]).astype(float)
    model = DawidSkene().fit(votes)
    # Applying the one fitted model to a slice gives that slice of the full posterior; fitting a
    # separate model on a small slice (what was done per split) would learn other rates.
    assert model(votes[:, :20]) == pytest.approx(model(votes)[:20])
