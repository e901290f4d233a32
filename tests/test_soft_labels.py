"""Calibration and aggregation of verdicts into soft labels, on data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oversight.soft_labels import Calibrator, dawid_skene, skill_weights, weighted_average
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
    post, params = dawid_skene(votes)
    ds_acc = np.mean((post > 0.5) == y)
    majority_acc = np.mean((votes.mean(0) > 0.5) == y)
    assert ds_acc > majority_acc + 0.02 and ds_acc >= 0.88
    # The learnt rates match each source's realised rates on this sample.
    assert params["sensitivity"] == pytest.approx(votes[:, y].mean(1), abs=0.03)
    assert params["specificity"] == pytest.approx(1 - votes[:, ~y].mean(1), abs=0.03)
