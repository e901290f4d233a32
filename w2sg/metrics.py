"""Metrics for binary labels and students: accuracy, calibration, performance gap recovered (PGR),
with paired percentile-bootstrap confidence intervals over test rows.

Predictions are always p(true) arrays of shape (N,); gold labels are 0/1 arrays of shape (N,).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict


class Estimate(BaseModel):
    """A point estimate with its bootstrap interval [lo, hi], computed from n rows."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    value: float
    lo: float
    hi: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


class LabelQuality(BaseModel):
    """How good a set of soft labels is against gold: accuracy with its interval, ECE and Brier."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    accuracy: Estimate
    ece: float
    brier: float
    n: int


def _check(probs: ArrayLike, gold: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=float)
    g = np.asarray(gold, dtype=float)
    if p.ndim != 1 or g.ndim != 1:
        raise ValueError(f"probs and gold must be 1-D, got shapes {p.shape} and {g.shape}")
    if len(p) != len(g):
        raise ValueError(f"probs and gold must have the same length, got {len(p)} and {len(g)}")
    if len(p) == 0:
        raise ValueError("probs and gold must not be empty")
    # Written so that NaN probabilities fail too.
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError("probs must be probabilities p(true) in [0, 1]")
    if not np.isin(g, (0.0, 1.0)).all():
        raise ValueError("gold must hold only 0 and 1")
    return p, g


def _accuracy(p: np.ndarray, g: np.ndarray) -> float:
    # Unchecked, for the bootstrap's inner loop.
    return float(np.mean((p > 0.5) == (g == 1)))


def accuracy(probs: ArrayLike, gold: ArrayLike) -> float:
    """Fraction of rows where (p(true) > 0.5) equals the gold label."""
    return _accuracy(*_check(probs, gold))


def bootstrap_ci(
    stat: Callable[..., float],
    arrays: Sequence[np.ndarray],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval for `stat(*arrays)`.

    Rows are resampled jointly: every array is indexed by the same draw, so statistics that
    compare models on the same test rows keep their pairing. NaN statistics (e.g. PGR on a
    resample where weak and ceiling tie) are left out of the percentiles; if all are NaN the
    interval is (nan, nan).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if len(arrays) == 0:
        raise ValueError("arrays must hold at least one array")
    arrs = [np.asarray(a) for a in arrays]
    n = len(arrs[0])
    if any(len(a) != n for a in arrs):
        raise ValueError(f"arrays must all have the same length, got {[len(a) for a in arrs]}")
    if n == 0:
        raise ValueError("arrays must not be empty")
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, size=n)
        stats[b] = stat(*(a[idx] for a in arrs))
    stats = stats[~np.isnan(stats)]
    if len(stats) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(stats, [tail, 100.0 - tail])
    return float(lo), float(hi)


def mean_ci(x: ArrayLike, *, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """The mean of per-row values (correctness 0/1, tokens, seconds) with a 95% bootstrap interval."""
    a = np.asarray(x, dtype=float)
    lo, hi = bootstrap_ci(lambda v: float(v.mean()), [a], n_boot=n_boot, seed=seed)
    return Estimate(value=float(a.mean()), lo=lo, hi=hi, n=len(a))


def correct(probs: ArrayLike, gold: ArrayLike) -> np.ndarray:
    """Per-row correctness (1.0 / 0.0) of p(true) against gold, both thresholded at 0.5."""
    return ((np.asarray(probs) > 0.5) == (np.asarray(gold) > 0.5)).astype(float)


def paired_gain(a: ArrayLike, b: ArrayLike, *, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """mean(a) − mean(b) over the same rows, with a 95% bootstrap interval (rows resampled jointly)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    lo, hi = bootstrap_ci(lambda u, v: float(u.mean() - v.mean()), [x, y], n_boot=n_boot, seed=seed)
    return Estimate(value=float(x.mean() - y.mean()), lo=lo, hi=hi, n=len(x))


def accuracy_ci(probs: ArrayLike, gold: ArrayLike, *, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """Accuracy with a 95% percentile-bootstrap interval."""
    p, g = _check(probs, gold)
    lo, hi = bootstrap_ci(_accuracy, [p, g], n_boot=n_boot, seed=seed)
    return Estimate(value=_accuracy(p, g), lo=lo, hi=hi, n=len(g))


def pgr(weak: float, student: float, ceiling: float) -> float:
    """Performance gap recovered, (student - weak) / (ceiling - weak); nan when ceiling == weak."""
    if ceiling == weak:
        return float("nan")
    return (student - weak) / (ceiling - weak)


def pgr_ci(
    weak_probs: ArrayLike,
    student_probs: ArrayLike,
    ceiling_probs: ArrayLike,
    gold: ArrayLike,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """PGR of the full-data accuracies, with a paired 95% bootstrap interval over test rows.

    The three models are scored on the same resampled rows, so their shared row difficulty
    cancels in the interval instead of widening it.
    """
    w, g = _check(weak_probs, gold)
    s, _ = _check(student_probs, gold)
    c, _ = _check(ceiling_probs, gold)

    def stat(w: np.ndarray, s: np.ndarray, c: np.ndarray, g: np.ndarray) -> float:
        return pgr(_accuracy(w, g), _accuracy(s, g), _accuracy(c, g))

    lo, hi = bootstrap_ci(stat, [w, s, c, g], n_boot=n_boot, seed=seed)
    return Estimate(value=stat(w, s, c, g), lo=lo, hi=hi, n=len(g))


def ece(probs: ArrayLike, gold: ArrayLike, n_bins: int = 10) -> float:
    """Binary expected calibration error, sum_b (|B_b| / N) * |acc_b - conf_b|.

    Confidence is max(p, 1 - p) for the predicted class (p > 0.5), binned into n_bins equal-width
    bins over [0.5, 1.0]; each bin is [lo, hi) except the last, which also holds 1.0.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p, g = _check(probs, gold)
    conf = np.maximum(p, 1.0 - p)
    correct = ((p > 0.5) == (g == 1)).astype(float)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    bins = np.digitize(conf, edges[1:-1])
    total = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(total)


def brier(probs: ArrayLike, gold: ArrayLike) -> float:
    """Brier score, mean((p - gold)^2)."""
    p, g = _check(probs, gold)
    return float(np.mean((p - g) ** 2))


def label_quality(probs: ArrayLike, gold: ArrayLike, *, n_boot: int = 1000, seed: int = 0) -> LabelQuality:
    """Accuracy (with interval), ECE and Brier of soft labels against gold."""
    p, g = _check(probs, gold)
    return LabelQuality(
        accuracy=accuracy_ci(p, g, n_boot=n_boot, seed=seed),
        ece=ece(p, g),
        brier=brier(p, g),
        n=len(g),
    )


def auc(probs: ArrayLike, gold: ArrayLike) -> float:
    """Area under the ROC curve: the chance that a random true row scores above a random false
    one (ties count half). Threshold-free, so it shows signal a miscalibrated model hides at 0.5.
    NaN when gold holds one class only."""
    p, g = _check(probs, gold)
    pos, neg = p[g > 0.5], p[g <= 0.5]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))
