"""Metrics for binary labels and students: accuracy, calibration, performance gap recovered (PGR),
with cluster-bootstrap confidence intervals: the rows of one question are correlated (on SciQ its
correct answer and a distractor), so questions are resampled, not rows.

Predictions are always p(true) arrays of shape (N,); gold labels are 0/1 arrays of shape (N,).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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


def accuracy(probs: ArrayLike, gold: ArrayLike) -> float:
    """Fraction of rows where (p(true) > 0.5) equals the gold label."""
    return float(correct(*_check(probs, gold)).mean())


# Bootstrap draws are processed in chunks of at most this many (resample, cluster) cells: each
# chunk holds a draw and a count matrix of that size (2**20 cells: 8 MB each), so memory stays
# flat however many questions a split has (1,000 resamples of 5,000 questions at once: 80 MB).
_CHUNK_CELLS = 2**20


def _clusters(groups: ArrayLike | None, n: int) -> tuple[np.ndarray, int]:
    """Cluster code per row (0..C-1) and C. No groups: every row is its own cluster."""
    if groups is None:
        return np.arange(n), n
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must have one entry per row ({n}), got shape {g.shape}")
    _, codes = np.unique(g, return_inverse=True)
    return codes.reshape(-1), int(codes.max()) + 1


def bootstrap_means(
    values: ArrayLike, groups: ArrayLike | None = None, *, n_boot: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster bootstrap of row means: `values` (K, N), K per-row quantities on the same N rows
    (e.g. the correctness of three models on one test set), `groups` (N,) the cluster of each row
    (the question id: a question's rows are correlated, so questions are resampled, not rows).

    Returns the means over all rows, shape (K,), and over each resample, shape (n_boot, K). Every
    quantity is resampled with the same draw, so comparisons on the same rows keep their pairing.
    A resample's mean is over the rows of the drawn clusters (clusters may differ in size)."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2 or v.shape[1] == 0:
        raise ValueError(f"values must be (K, N) with N >= 1 rows, got shape {v.shape}")
    codes, c = _clusters(groups, v.shape[1])
    sums = np.zeros((c, len(v)))
    np.add.at(sums, codes, v.T)
    sizes = np.bincount(codes, minlength=c).astype(float)
    out = [(counts @ sums) / (counts @ sizes)[:, None] for counts in _resample_counts(c, n_boot, seed)]
    return v.mean(1), np.concatenate(out)


def _resample_counts(c: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """How often each of `c` clusters is drawn (with replacement, `c` draws) in each of `n_boot`
    resamples, in chunks of shape (b, c). Every bootstrap of the project draws through here, so
    two statistics of the same rows with the same seed see the same resamples (they stay paired)."""
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_CELLS // c)
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        draw = rng.integers(0, c, size=(b, c)) + (np.arange(b) * c)[:, None]
        yield np.bincount(draw.ravel(), minlength=b * c).reshape(b, c).astype(float)


def percentile_interval(draws: ArrayLike, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap draws. Non-finite draws (e.g. PGR on a resample where floor
    and ceiling tie) are left out; if none is left the interval is (nan, nan)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    d = np.asarray(draws, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(d, [tail, 100.0 - tail])
    return float(lo), float(hi)


def bootstrap_ci(
    stat: Callable[[np.ndarray], np.ndarray],
    values: ArrayLike,
    groups: ArrayLike | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """A statistic of row means with its cluster-bootstrap percentile interval.

    `stat` maps means of shape (B, K) to B values (it is called on the full-data means as B = 1,
    then on all resamples at once). Every interval in the project's reports is drawn by
    `bootstrap_means`, most through here."""
    point, draws = bootstrap_means(values, groups, n_boot=n_boot, seed=seed)
    lo, hi = percentile_interval(stat(draws), level)
    n = np.asarray(values).shape[-1]
    return Estimate(value=float(stat(point[None])[0]), lo=lo, hi=hi, n=n)


def mean_ci(x: ArrayLike, groups: ArrayLike | None = None, *, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """The mean of per-row values (correctness 0/1, tokens, seconds) with a 95% cluster-bootstrap
    interval (`groups`: the question of each row)."""
    return bootstrap_ci(lambda m: m[:, 0], np.asarray(x, dtype=float), groups, n_boot=n_boot, seed=seed)


def correct(probs: ArrayLike, gold: ArrayLike) -> np.ndarray:
    """Per-row correctness (1.0 / 0.0) of p(true) against gold, both thresholded at 0.5."""
    return ((np.asarray(probs) > 0.5) == (np.asarray(gold) > 0.5)).astype(float)


def paired_gain(
    a: ArrayLike, b: ArrayLike, groups: ArrayLike | None = None, *, n_boot: int = 1000, seed: int = 0
) -> Estimate:
    """mean(a) − mean(b) over the same rows, with a 95% interval (questions resampled jointly)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same length, got {len(x)} and {len(y)}")
    return bootstrap_ci(lambda m: m[:, 0] - m[:, 1], np.stack([x, y]), groups, n_boot=n_boot, seed=seed)


# Sign-flip tests enumerate every flip exactly up to this many clusters (2**16 flips); above it,
# or when n_perm is smaller than 2**C, they draw n_perm random flips.
_EXACT_MAX_CLUSTERS = 16


def paired_permutation(
    a: ArrayLike, b: ArrayLike, groups: ArrayLike | None = None, *, n_perm: int = 10000, seed: int = 0
) -> float:
    """Two-sided p-value of mean(a) − mean(b) = 0 over the same rows: a sign-flip permutation test
    on the per-question sums of the paired differences (under the null a question's a and b are
    exchangeable, so its rows flip together: clustered like the bootstrap). Exact over all 2**C
    flips when that is at most n_perm (and C ≤ 16); else n_perm random flips, p = (1 + hits) /
    (1 + n_perm) so that a Monte Carlo p is never 0. Identical a and b give p = 1."""
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(
            f"a and b must be 1-D, non-empty and of one length, got shapes {x.shape} and {y.shape}"
        )
    codes, c = _clusters(groups, len(x))
    sums = np.bincount(codes, weights=x - y, minlength=c)
    observed = abs(sums.sum())
    # Flips that tie the observed statistic count as extreme; the tolerance absorbs float noise.
    tol = 1e-9 * max(1.0, float(np.abs(sums).sum()))
    exact = c <= _EXACT_MAX_CLUSTERS and 2**c <= n_perm
    hits = sum(
        int((np.abs(signs @ sums) >= observed - tol).sum()) for signs in _sign_flips(c, exact, n_perm, seed)
    )
    return hits / 2**c if exact else (1 + hits) / (1 + n_perm)


def _sign_flips(c: int, exact: bool, n_perm: int, seed: int) -> Iterator[np.ndarray]:
    """±1 flips of `c` clusters in chunks of shape (b, c): all 2**c of them (`exact`), or n_perm
    random ones drawn from `seed`; chunked like `_resample_counts`, so memory stays flat."""
    total = 2**c if exact else n_perm
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_CELLS // c)
    for start in range(0, total, step):
        b = min(step, total - start)
        if exact:
            bits = (np.arange(start, start + b)[:, None] >> np.arange(c)) & 1
        else:
            bits = rng.integers(0, 2, size=(b, c))
        yield 2.0 * bits - 1.0


def accuracy_ci(
    probs: ArrayLike, gold: ArrayLike, groups: ArrayLike | None = None, *, n_boot: int = 1000, seed: int = 0
) -> Estimate:
    """Accuracy with a 95% cluster-bootstrap interval."""
    p, g = _check(probs, gold)
    return mean_ci(correct(p, g), groups, n_boot=n_boot, seed=seed)


def pgr(weak: float, student: float, ceiling: float) -> float:
    """Performance gap recovered, (student - weak) / (ceiling - weak); nan when ceiling == weak."""
    if ceiling == weak:
        return float("nan")
    return (student - weak) / (ceiling - weak)


def pgr_draws(floor: np.ndarray, student: np.ndarray, ceiling: np.ndarray) -> np.ndarray:
    """PGR elementwise (e.g. over bootstrap draws); nan where floor and ceiling tie."""
    gap = ceiling - floor
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gap == 0, np.nan, (student - floor) / np.where(gap == 0, 1.0, gap))


def pgr_ci(
    floor_ok: ArrayLike,
    student_ok: ArrayLike,
    ceiling_ok: ArrayLike,
    groups: ArrayLike | None = None,
    *,
    floor_groups: ArrayLike | None = None,
    paired: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """PGR of the full-data accuracies from per-row correctness (0/1), with a 95% interval.

    Student and ceiling are scored on the same test rows and resampled together (their shared row
    difficulty cancels). `paired`: the floor was measured on those rows too; otherwise (a
    supervisor scored on the split it labelled) its rows are resampled on their own, clustered by
    `floor_groups`."""
    s, c = np.asarray(student_ok, dtype=float), np.asarray(ceiling_ok, dtype=float)
    f = np.asarray(floor_ok, dtype=float)
    if s.shape != c.shape or (paired and f.shape != s.shape):
        raise ValueError(
            f"floor, student and ceiling must have the same length, got {len(f)}, {len(s)}, {len(c)}"
        )
    if paired:
        return bootstrap_ci(
            lambda m: pgr_draws(m[:, 0], m[:, 1], m[:, 2]),
            np.stack([f, s, c]),
            groups,
            n_boot=n_boot,
            seed=seed,
        )
    point, draws = bootstrap_means(np.stack([s, c]), groups, n_boot=n_boot, seed=seed)
    f_point, f_draws = bootstrap_means(f, floor_groups, n_boot=n_boot, seed=seed + 1)
    lo, hi = percentile_interval(pgr_draws(f_draws[:, 0], draws[:, 0], draws[:, 1]))
    value = float(pgr_draws(f_point[:1], point[:1], point[1:])[0])
    return Estimate(value=value, lo=lo, hi=hi, n=len(s))


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


def label_quality(
    probs: ArrayLike, gold: ArrayLike, groups: ArrayLike | None = None, *, n_boot: int = 1000, seed: int = 0
) -> LabelQuality:
    """Accuracy (with its cluster-bootstrap interval), ECE and Brier of soft labels against gold."""
    p, g = _check(probs, gold)
    return LabelQuality(
        accuracy=accuracy_ci(p, g, groups, n_boot=n_boot, seed=seed),
        ece=ece(p, g),
        brier=brier(p, g),
        n=len(g),
    )


def auc(probs: ArrayLike, gold: ArrayLike) -> float:
    """Area under the ROC curve: the chance that a random true row scores above a random false
    one (ties count half). Threshold-free, so it shows signal a miscalibrated model hides at 0.5.
    NaN when gold holds one class only."""
    p, g = _check(probs, gold)
    return float(weighted_auc(p, g, np.ones((1, len(p))))[0])


def weighted_auc(probs: ArrayLike, gold: ArrayLike, weights: ArrayLike) -> np.ndarray:
    """AUC with row weights, for B weightings at once: `weights` (B, N) -> (B,). A pair of a true
    and a false row counts by the product of their weights, so integer weights give the AUC of the
    rows repeated that often (a bootstrap resample: each row weighted by its question's count).
    NaN where the weighted rows hold one class only."""
    p, g = _check(probs, gold)
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.shape[1] != len(p):
        raise ValueError(f"weights must be (B, {len(p)}), got shape {w.shape}")
    pos = g > 0.5
    order = np.argsort(p[pos], kind="stable")
    p_pos, p_neg = p[pos][order], p[~pos]
    # Weight of the true rows scoring at most each value: (B, P + 1), starting at 0.
    below = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w[:, pos][:, order], axis=1)], axis=1)
    lo = np.searchsorted(p_pos, p_neg, side="left")  # true rows below each false row
    hi = np.searchsorted(p_pos, p_neg, side="right")  # ... at or below it
    total_pos, w_neg = below[:, -1], w[:, ~pos]
    above = total_pos[:, None] - below[:, hi]
    ties = below[:, hi] - below[:, lo]
    pairs = total_pos * w_neg.sum(1)
    wins = (w_neg * (above + 0.5 * ties)).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)


def auc_bootstrap(
    probs: ArrayLike, gold: ArrayLike, groups: ArrayLike | None = None, *, n_boot: int = 1000, seed: int = 0
) -> tuple[float, np.ndarray]:
    """AUC of all rows and of each cluster-bootstrap resample, shape (n_boot,): the resamples of
    `bootstrap_means` with the same seed (a row weighs its question's count in the draw)."""
    p, g = _check(probs, gold)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    codes, c = _clusters(groups, len(p))
    draws = [weighted_auc(p, g, counts[:, codes]) for counts in _resample_counts(c, n_boot, seed)]
    return auc(p, g), np.concatenate(draws)


def auc_ci(
    probs: ArrayLike, gold: ArrayLike, groups: ArrayLike | None = None, *, n_boot: int = 1000, seed: int = 0
) -> Estimate:
    """ROC AUC with a 95% cluster-bootstrap interval (`groups`: the question of each row)."""
    point, draws = auc_bootstrap(probs, gold, groups, n_boot=n_boot, seed=seed)
    lo, hi = percentile_interval(draws)
    return Estimate(value=point, lo=lo, hi=hi, n=len(np.asarray(probs)))


def auc_pgr_ci(
    floor_p: ArrayLike,
    student_p: ArrayLike,
    ceiling_p: ArrayLike,
    gold: ArrayLike,
    groups: ArrayLike | None = None,
    *,
    floor_gold: ArrayLike | None = None,
    floor_groups: ArrayLike | None = None,
    paired: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """PGR on ROC AUC as EleutherAI/w2s reports it, (AUC_student − AUC_floor) / (AUC_ceiling −
    AUC_floor), with a 95% interval drawn like `pgr_ci`'s: student and ceiling resampled together;
    the floor too when `paired`, else on its own rows (`floor_gold`, `floor_groups`)."""
    s_point, s_draws = auc_bootstrap(student_p, gold, groups, n_boot=n_boot, seed=seed)
    c_point, c_draws = auc_bootstrap(ceiling_p, gold, groups, n_boot=n_boot, seed=seed)
    if paired:
        f_point, f_draws = auc_bootstrap(floor_p, gold, groups, n_boot=n_boot, seed=seed)
    else:
        f_gold = gold if floor_gold is None else floor_gold
        f_point, f_draws = auc_bootstrap(floor_p, f_gold, floor_groups, n_boot=n_boot, seed=seed + 1)
    lo, hi = percentile_interval(pgr_draws(f_draws, s_draws, c_draws))
    value = float(pgr_draws(np.array([f_point]), np.array([s_point]), np.array([c_point]))[0])
    return Estimate(value=value, lo=lo, hi=hi, n=len(np.asarray(student_p)))
