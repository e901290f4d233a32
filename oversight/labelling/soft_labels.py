"""Verdicts → soft labels: calibration on a small gold split, and aggregation across sources.

Calibrators map a raw p(true) to a calibrated one and are fitted on gold labels of a calibration
split only: `temperature` (one scale on the log-odds), `platt` (scale and shift), `isotonic`
(a monotone step function, pool-adjacent-violators). Aggregators combine several sources' p(true)
per row: `weighted_average` (weights from each source's log-likelihood gain over chance on the
calibration split, scored out of fold by `cross_fit`) and `DawidSkene` (binary Dawid-Skene EM:
per-source sensitivity and specificity learned without gold, from agreement alone).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

EPS = 1e-6
Method = Literal["none", "temperature", "platt", "isotonic"]


def _logit(p: ArrayLike) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(q / (1 - q))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))  # 1 / (1 + e^-z) without overflow


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


class Calibrator:
    """fit(p, gold) on the calibration split, then __call__(p) anywhere."""

    def __init__(self, method: Method = "platt"):
        if method not in ("none", "temperature", "platt", "isotonic"):
            raise ValueError(f"calibration must be none, temperature, platt or isotonic, got {method!r}")
        self.method = method
        self.a, self.b = 1.0, 0.0  # p' = sigmoid(a * logit(p) + b)
        self.xs: np.ndarray | None = None  # isotonic knots
        self.ys: np.ndarray | None = None

    def fit(self, p: ArrayLike, gold: ArrayLike) -> Calibrator:
        z, y = _logit(p), (np.asarray(gold, dtype=float) > 0.5).astype(float)
        if len(z) != len(y) or len(z) < 2:
            raise ValueError(f"calibration needs >= 2 rows with gold labels, got {len(z)} and {len(y)}")
        if self.method == "temperature":
            # 1-D convex in log-scale: golden-section search on log a.
            self.a = math.exp(_golden(lambda la: _nll(_sigmoid(math.exp(la) * z), y), -5.0, 5.0))
        elif self.method == "platt":
            self.a, self.b = _logistic(z, y)
        elif self.method == "isotonic":
            self.xs, self.ys = _pav(np.asarray(p, dtype=float), y)
        return self

    def __call__(self, p: ArrayLike) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        if self.method == "none":
            return p
        if self.method == "isotonic":
            assert self.xs is not None and self.ys is not None, "fit() first"
            return np.interp(p, self.xs, self.ys)
        return _sigmoid(self.a * _logit(p) + self.b)


def _golden(f, lo: float, hi: float, iters: int = 80) -> float:
    g = (math.sqrt(5) - 1) / 2
    c, d = hi - g * (hi - lo), lo + g * (hi - lo)
    for _ in range(iters):
        if f(c) < f(d):
            hi, d = d, c
            c = hi - g * (hi - lo)
        else:
            lo, c = c, d
            d = lo + g * (hi - lo)
    return (lo + hi) / 2


def _logistic(z: np.ndarray, y: np.ndarray, iters: int = 100, l2: float = 1e-4) -> tuple[float, float]:
    """Damped Newton for sigmoid(a z + b) on (z, y), a little L2 so separable data converges.
    Steps are halved until the loss falls: from a = 1 on overconfident inputs the curvature is
    tiny and a full Newton step overshoots."""
    x = np.stack([z, np.ones_like(z)], 1)

    def loss(w: np.ndarray) -> float:
        return _nll(_sigmoid(x @ w), y) + 0.5 * l2 * float(w @ w)

    w = np.array([1.0, 0.0])
    for _ in range(iters):
        p = _sigmoid(x @ w)
        grad = x.T @ (p - y) / len(y) + l2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x / len(y) + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        t, before = 1.0, loss(w)
        while loss(w - t * step) > before and t > 1e-8:
            t /= 2
        w = w - t * step
        if np.abs(t * step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def _pav(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool adjacent violators: the non-decreasing fit of y on p. Rows that share a p value are
    pooled first (one block per distinct p, as sklearn's IsotonicRegression does): the fit is a
    function of p, so tied rows must get one value, their mean. Knots at both ends of every pooled
    block, so the fit is flat across a block and interpolated only between blocks."""
    xs_u, inv = np.unique(p, return_inverse=True)
    sums = np.bincount(inv, weights=y)
    counts = np.bincount(inv).astype(float)
    blocks: list[list[float]] = []  # [sum y, count, min p, max p]
    for x, s, n in zip(xs_u, sums, counts, strict=True):
        blocks.append([s, n, x, x])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s2, n2, _, hi = blocks.pop()
            blocks[-1][0] += s2
            blocks[-1][1] += n2
            blocks[-1][3] = hi
    xs = np.array([x for b in blocks for x in (b[2], b[3])])
    ys = np.clip(np.array([b[0] / b[1] for b in blocks for _ in (0, 1)]), EPS, 1 - EPS)
    return xs, ys


def weighted_average(sources: np.ndarray, weights: ArrayLike) -> np.ndarray:
    """(S, N) p(true) per source → (N,) weighted mean; weights need not sum to 1."""
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(sources),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need {len(sources)} non-negative weights, not all 0, got {w.tolist()}")
    return (w[:, None] * np.asarray(sources, dtype=float)).sum(0) / w.sum()


def skill_weights(sources: np.ndarray, gold: ArrayLike) -> np.ndarray:
    """Per source, its log-likelihood gain over a coin flip on gold rows (0 when it does worse)."""
    y = (np.asarray(gold, dtype=float) > 0.5).astype(float)
    return np.array([max(0.0, math.log(2) - _nll(np.asarray(s, dtype=float), y)) for s in sources])


def cross_fit(
    raw: np.ndarray, gold: ArrayLike, groups: ArrayLike, method: Method, *, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Out-of-fold calibrated p(true) of each source on the calibration rows: (S, N) raw → (S, N),
    each row calibrated by a calibrator fitted on the other folds (folds are whole questions).
    Skill weights fitted on these are out of sample: a calibrator scored on its own fitting rows
    looks better than it is, most of all the flexible ones (isotonic)."""
    y = np.asarray(gold, dtype=float)
    g = np.asarray(groups)
    qs = np.unique(g)
    k = min(folds, len(qs))
    if k < 2:
        raise ValueError(f"cross-fitting needs >= 2 calibration questions, got {len(qs)}")
    shuffled = np.random.default_rng(seed).permutation(qs).tolist()
    fold_of = {q: i % k for i, q in enumerate(shuffled)}
    fold = np.array([fold_of[q] for q in g.tolist()])
    out = np.empty_like(np.asarray(raw, dtype=float))
    for f in range(k):
        fit, held = fold != f, fold == f
        for i, src in enumerate(raw):
            out[i, held] = Calibrator(method).fit(src[fit], y[fit])(src[held])
    return out


def average_weights(oof: np.ndarray, gold: ArrayLike) -> tuple[np.ndarray, str | None]:
    """Skill weights for the weighted average from out-of-fold p(true), and a warning when no source
    beats a coin flip out of sample: then every source gets the same weight."""
    w = skill_weights(oof, gold)
    if w.sum() > 0:
        return w, None
    return np.ones(len(w)), "no source beat chance out of sample on the calib split: uniform weights"


class DawidSkene:
    """Binary Dawid-Skene label model on hardened votes: per-source sensitivity P(vote 1 | true)
    and specificity P(vote 0 | false), and a prior, learned by EM without gold from agreement
    alone. Fit once (on every row of every split: no gold is used), then apply to any rows."""

    def __init__(self, iters: int = 100, tol: float = 1e-8):
        self.iters, self.tol = iters, tol
        self.prior = 0.5
        self.sens: np.ndarray | None = None
        self.spec: np.ndarray | None = None

    def fit(self, sources: np.ndarray) -> DawidSkene:
        """EM from the majority vote, so sources better than chance on average set the orientation."""
        v = _votes(sources)
        post = v.mean(0)  # majority-vote start
        for _ in range(self.iters):
            self.prior = float(np.clip(post.mean(), EPS, 1 - EPS))
            self.sens = np.clip((v * post).sum(1) / max(post.sum(), EPS), EPS, 1 - EPS)
            self.spec = np.clip(((1 - v) * (1 - post)).sum(1) / max((1 - post).sum(), EPS), EPS, 1 - EPS)
            new = self(sources)
            if np.abs(new - post).max() < self.tol:
                break
            post = new
        return self

    def __call__(self, sources: np.ndarray) -> np.ndarray:
        """Posterior p(true) per row of (S, N) p(true) votes."""
        assert self.sens is not None and self.spec is not None, "fit() first"
        v = _votes(sources)
        sens, spec = self.sens[:, None], self.spec[:, None]
        log_t = math.log(self.prior) + (v * np.log(sens) + (1 - v) * np.log(1 - sens)).sum(0)
        log_f = math.log(1 - self.prior) + (v * np.log(1 - spec) + (1 - v) * np.log(spec)).sum(0)
        return _sigmoid(log_t - log_f)

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {"prior": np.array([self.prior]), "sensitivity": self.sens, "specificity": self.spec}  # type: ignore[dict-item]


def _votes(sources: np.ndarray) -> np.ndarray:
    return (np.asarray(sources, dtype=float) > 0.5).astype(float)
