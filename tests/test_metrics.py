"""Metrics against values worked out by hand, and the bootstrap's basic properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from w2sg.metrics import (
    Estimate,
    LabelQuality,
    accuracy,
    accuracy_ci,
    bootstrap_means,
    brier,
    correct,
    ece,
    label_quality,
    mean_ci,
    paired_gain,
    paired_permutation,
    percentile_interval,
    pgr,
    pgr_ci,
)


def synthetic(n: int, acc: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probs that are right on about a fraction `acc` of n rows."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 2, size=n).astype(float)
    right = rng.random(n) < acc
    probs = np.where(right == (gold == 1), 0.8, 0.2)
    return probs, gold


def test_accuracy_toy() -> None:
    # Predictions p > 0.5: [1, 0, 1, 0, 0]; gold [1, 0, 0, 0, 1] -> right on rows 0, 1, 3 -> 3/5.
    # p = 0.5 exactly predicts "false".
    assert accuracy([0.9, 0.1, 0.7, 0.5, 0.4], [1, 0, 0, 0, 1]) == pytest.approx(0.6)


def test_ece_by_hand() -> None:
    # 5 bins of width 0.1 over [0.5, 1.0].
    # probs  [0.95, 0.92, 0.25, 0.35], gold [1, 0, 0, 1]
    # conf   [0.95, 0.92, 0.75, 0.65], pred [1, 1, 0, 0], correct [1, 0, 1, 0]
    # bin [0.9, 1.0]: rows 0, 1: acc 1/2, conf 0.935 -> 2/4 * 0.435 = 0.2175
    # bin [0.7, 0.8): row 2:     acc 1,   conf 0.75  -> 1/4 * 0.25  = 0.0625
    # bin [0.6, 0.7): row 3:     acc 0,   conf 0.65  -> 1/4 * 0.65  = 0.1625
    # ECE = 0.2175 + 0.0625 + 0.1625 = 0.4425
    assert ece([0.95, 0.92, 0.25, 0.35], [1, 0, 0, 1], n_bins=5) == pytest.approx(0.4425)


def test_ece_confidence_one_lands_in_last_bin() -> None:
    # Row 0: p = 1.0, gold 1 -> last bin, acc 1, conf 1 -> 0.
    # Row 1: p = 0.5 predicts "false", gold 1 -> first bin, acc 0, conf 0.5 -> 1/2 * 1/2 = 0.25.
    assert ece([1.0, 0.5], [1, 1], n_bins=10) == pytest.approx(0.25)


def test_brier_by_hand() -> None:
    # ((0.9 - 1)^2 + (0.2 - 0)^2 + (0.6 - 0)^2) / 3 = (0.01 + 0.04 + 0.36) / 3 = 0.41 / 3
    assert brier([0.9, 0.2, 0.6], [1, 0, 0]) == pytest.approx(0.41 / 3)


def test_calibrated_data_has_small_ece() -> None:
    rng = np.random.default_rng(0)
    probs = rng.random(20_000)
    gold = (rng.random(20_000) < probs).astype(float)
    assert ece(probs, gold) < 0.02
    # And a sharpened version of the same data is visibly miscalibrated.
    sharp = np.where(probs > 0.5, 1.0, 0.0)
    assert ece(sharp, gold) > 0.2


def test_pgr_formula_and_nan() -> None:
    # (0.7 - 0.6) / (0.8 - 0.6) = 0.5
    assert pgr(0.6, 0.7, 0.8) == pytest.approx(0.5)
    assert pgr(0.6, 0.9, 0.8) == pytest.approx(1.5)
    assert pgr(0.6, 0.5, 0.8) == pytest.approx(-0.5)
    assert math.isnan(pgr(0.7, 0.9, 0.7))


def test_accuracy_ci_contains_value_and_shrinks_with_rows() -> None:
    small = accuracy_ci(*synthetic(200, 0.7, seed=1))
    large = accuracy_ci(*synthetic(20_000, 0.7, seed=1))
    for est in (small, large):
        assert est.lo <= est.value <= est.hi
    assert small.n == 200 and large.n == 20_000
    # Width scales like 1/sqrt(n): 100x the rows, about a tenth of the width.
    assert large.hi - large.lo < (small.hi - small.lo) / 5


def test_same_seed_same_interval() -> None:
    probs, gold = synthetic(500, 0.7, seed=2)
    assert accuracy_ci(probs, gold, seed=3) == accuracy_ci(probs, gold, seed=3)
    assert accuracy_ci(probs, gold, seed=3) != accuracy_ci(probs, gold, seed=4)


def test_bootstrap_resamples_rows_jointly() -> None:
    # x and y are equal row by row; a paired resample keeps them equal, an unpaired one would not.
    x = (np.arange(50) % 3 == 0).astype(float)
    d = paired_gain(x, x.copy(), n_boot=200)
    assert d.lo == d.hi == d.value == 0.0


def test_percentile_interval_ignores_nan_draws() -> None:
    assert percentile_interval([1.0, np.nan, 1.0, np.inf]) == (1.0, 1.0)
    lo, hi = percentile_interval([np.nan, np.nan])
    assert math.isnan(lo) and math.isnan(hi)


def test_cluster_bootstrap_resamples_questions_not_rows() -> None:
    # Each question's two rows are identical: there are 500 independent units, not 1,000, so the
    # question-level interval is about sqrt(2) wider than a row-level one.
    rng = np.random.default_rng(0)
    per_q = (rng.random(500) < 0.7).astype(float)
    x, q = np.repeat(per_q, 2), np.repeat(np.arange(500), 2)
    rows, clustered = mean_ci(x, n_boot=4000), mean_ci(x, q, n_boot=4000)
    assert rows.value == clustered.value
    ratio = (clustered.hi - clustered.lo) / (rows.hi - rows.lo)
    assert 1.25 < ratio < 1.6, ratio
    # Anti-correlated rows (a question's answer right iff its distractor wrong) cancel within a
    # question: the clustered interval of their mean collapses.
    y = np.stack([per_q, 1 - per_q], 1).ravel()
    assert mean_ci(y, q).hi - mean_ci(y, q).lo == 0.0 < mean_ci(y).hi - mean_ci(y).lo


def test_cluster_means_are_row_means_of_the_drawn_questions() -> None:
    # Clusters of unequal size: a resample's mean is over the rows it holds, not a mean of means.
    values, groups = np.array([1.0, 1.0, 1.0, 0.0]), np.array(["a", "a", "a", "b"])
    point, draws = bootstrap_means(values, groups, n_boot=2000, seed=1)
    assert point == pytest.approx([0.75])
    assert set(np.round(draws[:, 0], 6)) == {0.0, 0.75, 1.0}


def test_pgr_ci_value_is_pgr_of_full_accuracies() -> None:
    rng = np.random.default_rng(5)
    gold = rng.integers(0, 2, size=1000).astype(float)
    q = np.repeat(np.arange(500), 2)

    def noisy(acc: float) -> np.ndarray:
        right = rng.random(1000) < acc
        return np.where(right == (gold == 1), 0.9, 0.1)

    weak, student, ceiling = (correct(noisy(a), gold) for a in (0.65, 0.75, 0.9))
    est = pgr_ci(weak, student, ceiling, q, n_boot=300)
    want = pgr(weak.mean(), student.mean(), ceiling.mean())
    assert est.value == pytest.approx(want)
    assert est.lo <= est.value <= est.hi and est.n == 1000
    assert pgr_ci(weak, student, ceiling, q, n_boot=300) == est
    # A floor measured on other rows is resampled on its own: the interval is wider than paired.
    apart = pgr_ci(weak[:600], student, ceiling, q, floor_groups=q[:600], paired=False, n_boot=300)
    assert apart.value == pytest.approx(pgr(weak[:600].mean(), student.mean(), ceiling.mean()))
    assert apart.hi - apart.lo > est.hi - est.lo


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="same length"):
        accuracy([0.1, 0.9], [1])
    with pytest.raises(ValueError, match="same length"):
        ece([0.1, 0.9], [1, 0, 1])
    with pytest.raises(ValueError, match="same length"):
        brier([0.1], [1, 0])
    with pytest.raises(ValueError, match="same length"):
        pgr_ci([1, 0], [1], [1, 0])
    with pytest.raises(ValueError, match="same length"):
        paired_gain(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="one entry per row"):
        mean_ci(np.zeros(4), groups=["a", "b"])


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])
    with pytest.raises(ValueError, match="probs"):
        accuracy([1.2], [1])
    with pytest.raises(ValueError, match="gold"):
        accuracy([0.2], [0.5])
    with pytest.raises(ValueError, match="n_bins"):
        ece([0.2], [0], n_bins=0)


def test_estimate_and_label_quality() -> None:
    est = Estimate(value=0.7123, lo=0.6681, hi=0.7514, n=100)
    assert str(est) == "0.712 [0.668, 0.751]"
    with pytest.raises(ValidationError):
        Estimate(value=0.5, lo=0.4, hi=0.6, n=10, extra=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        est.value = 0.1  # type: ignore[misc]

    probs, gold = [0.95, 0.92, 0.25, 0.35], [1, 0, 0, 1]
    q = label_quality(probs, gold, seed=0)
    assert isinstance(q, LabelQuality) and q.n == 4
    assert q.accuracy.value == pytest.approx(0.5)
    assert q.ece == pytest.approx(ece(probs, gold))
    assert q.brier == pytest.approx(brier(probs, gold))


def test_auc_by_hand() -> None:
    from w2sg.metrics import auc

    # Pairs (true, false): (0.9, 0.2) >, (0.9, 0.6) >, (0.6, 0.2) >, (0.6, 0.6) tie → 3.5 / 4.
    assert auc([0.9, 0.6, 0.2, 0.6], [1, 1, 0, 0]) == 0.875
    assert auc([0.7, 0.7, 0.7, 0.7], [1, 0, 1, 0]) == 0.5  # a constant model has no signal
    assert np.isnan(auc([0.1, 0.2], [1, 1]))


def test_weighted_auc_with_integer_weights_is_the_auc_of_repeated_rows() -> None:
    from w2sg.metrics import auc, weighted_auc

    rng = np.random.default_rng(0)
    p = np.round(rng.random(40), 1)  # rounded: many ties, which count half
    g = (rng.random(40) < 0.5).astype(float)
    w = rng.integers(0, 4, size=(5, 40))
    got = weighted_auc(p, g, w)
    for b in range(5):
        assert got[b] == pytest.approx(auc(np.repeat(p, w[b]), np.repeat(g, w[b])))
    assert weighted_auc(p, g, np.ones((1, 40)))[0] == pytest.approx(auc(p, g))
    only_true = np.where(g > 0.5, 1, 0)[None]  # weights leave one class: no pair to rank
    assert np.isnan(weighted_auc(p, g, only_true)[0])


def test_auc_interval_resamples_questions_and_contains_the_point() -> None:
    from w2sg.metrics import auc, auc_bootstrap, auc_ci

    p, g = synthetic(400, 0.7, seed=1)
    q = np.repeat(np.arange(200), 2)
    est = auc_ci(p, g, q, n_boot=300, seed=2)
    assert est.value == pytest.approx(auc(p, g)) and est.lo < est.value < est.hi and est.n == 400
    # Resample b weighs each row by how often its question was drawn: the same draw as the
    # accuracy bootstrap of that seed, so the AUC of those repeated rows is draw b.
    _, draws = auc_bootstrap(p, g, q, n_boot=3, seed=2)
    rng = np.random.default_rng(2)
    counts = np.bincount(rng.integers(0, 200, size=200), minlength=200)
    assert draws[0] == pytest.approx(auc(np.repeat(p, counts[q]), np.repeat(g, counts[q])))


def test_pgr_on_auc_by_hand() -> None:
    from w2sg.metrics import auc, auc_pgr_ci

    # Gold [1, 1, 0, 0]. Floor: (0.6 > 0.5, 0.6 > 0.3, 0.4 < 0.5, 0.4 > 0.3) → AUC 3/4; student:
    # 0.875 (test_auc_by_hand); ceiling ranks perfectly, 1. PGR on AUC = (0.875 − 0.75) / 0.25.
    floor, student, ceiling, gold = (
        [0.6, 0.4, 0.5, 0.3],
        [0.9, 0.6, 0.2, 0.6],
        [0.9, 0.8, 0.1, 0.2],
        [1, 1, 0, 0],
    )
    assert (auc(floor, gold), auc(student, gold), auc(ceiling, gold)) == (0.75, 0.875, 1.0)
    # 30 questions of these four rows each: repeating rows changes no AUC, and gives the bootstrap
    # questions to resample.
    rep = 30
    tile = [np.tile(x, rep) for x in (floor, student, ceiling, gold)]
    qids = np.repeat(np.arange(rep), 4)
    est = auc_pgr_ci(*tile, qids, n_boot=300, seed=0)
    assert est.value == pytest.approx(0.5) and est.lo <= est.value <= est.hi
    # Every question is a copy of the others: each resample has the same AUCs, so no spread.
    assert est.lo == pytest.approx(0.5) and est.hi == pytest.approx(0.5)
    # Unpaired: the floor on rows of its own (a supervisor floored on the split it labelled).
    other_p, other_g = synthetic(200, 0.8, seed=3)
    unpaired = auc_pgr_ci(
        other_p,
        *tile[1:],
        qids,
        floor_gold=other_g,
        floor_groups=np.repeat(np.arange(100), 2),
        paired=False,
        n_boot=300,
        seed=0,
    )
    f = auc(other_p, other_g)
    assert unpaired.value == pytest.approx((0.875 - f) / (1.0 - f))
    assert unpaired.lo < unpaired.value < unpaired.hi  # the floor's own questions vary now


def test_bootstrap_memory_does_not_grow_with_the_number_of_questions() -> None:
    # 1,000 resamples of 10,000 questions would be two 80 MB matrices at once; chunked, the peak
    # stays near the chunk size (labelling all of SciQ's train file grew peak RSS by 86 MB before).
    import tracemalloc

    x = np.random.default_rng(0).random(20_000)
    q = np.repeat(np.arange(10_000), 2)
    tracemalloc.start()
    bootstrap_means(x, q, n_boot=1000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 40 * 2**20, peak / 2**20


def test_paired_permutation_exact_by_hand() -> None:
    # Differences [1, 1, 1]: of the 8 sign flips only all-plus and all-minus reach |sum| = 3.
    assert paired_permutation([1, 1, 1], [0, 0, 0]) == pytest.approx(2 / 8)
    # Differences [1, -1, 2], observed |sum| 2: flips s1 - s2 + 2 s3 reach |.| >= 2 in 6 of 8.
    assert paired_permutation([1, 0, 2], [0, 1, 0]) == pytest.approx(6 / 8)
    # Clustered: question q1's rows flip together, sums [2, 0, 1]: |±2 ± 1| = 3 in 4 of 8 flips.
    assert paired_permutation([1, 1, 0, 1], [0, 0, 0, 0], ["q1", "q1", "q2", "q3"]) == pytest.approx(4 / 8)


def test_paired_permutation_identical_and_large_difference() -> None:
    x = np.random.default_rng(0).integers(0, 2, 300).astype(float)
    assert paired_permutation(x, x) == 1.0  # every flip ties at 0
    ok_a = (np.random.default_rng(2).random(400) < 0.9).astype(float)
    ok_b = (np.random.default_rng(3).random(400) < 0.6).astype(float)
    p = paired_permutation(ok_a, ok_b, np.arange(400) // 2, n_perm=2000)
    assert p < 0.01
    assert p == pytest.approx(1 / 2001)  # Monte Carlo: never 0, no flip reaches a 0.3 gap


def test_paired_permutation_deterministic_per_seed() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.integers(0, 2, 200).astype(float), rng.integers(0, 2, 200).astype(float)
    p0 = paired_permutation(a, b, n_perm=500, seed=0)
    assert p0 == paired_permutation(a, b, n_perm=500, seed=0)
    assert 0.0 < p0 <= 1.0
    assert {paired_permutation(a, b, n_perm=500, seed=s) for s in range(5)} != {p0}  # the seed matters
    with pytest.raises(ValueError, match="one length"):
        paired_permutation([1, 0], [1])


def test_paired_permutation_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=10), rng.normal(size=10) + 0.5
    ref = stats.permutation_test(
        (a, b), lambda x, y: np.mean(x - y), permutation_type="samples", n_resamples=10**6
    ).pvalue
    assert paired_permutation(a, b, n_perm=2**10) == pytest.approx(ref)
