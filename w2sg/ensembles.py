"""Ensembles of weak teachers (Sang et al. 2024, §3.2): bagging and AdaBoost SAMME.

Both only need a `Fit`: train one weak model on (rows, labels, sample weights) and return its
p(true) predictor. Each member predicts every split it will ever be asked about right after it is
trained, then is dropped, so no more than one model is alive at a time; with a frozen-feature weak
model (`kind: features`) the features are computed once and shared by every bag and round.

Selection (number of bags, vote) uses out-of-bag rows of the weak training split or the
validation split. The test split never reaches this module.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from w2sg.config import Config
from w2sg.data import Example

log = logging.getLogger(__name__)

Predictor = Callable[[Sequence[Example]], np.ndarray]  # rows -> p(true), shape (N,)
#: (rows, labels, sample weights or None, seed) -> the trained member's predictor
Fit = Callable[[Sequence[Example], np.ndarray, np.ndarray | None, int], Predictor]
Vote = Literal["soft", "majority"]


class EnsembleConfig(Config):
    method: Literal["bagging", "boosting"]
    name: str | None = Field(None, description="label source name; default: the method")
    n: int = Field(5, ge=1, description="bags (bagging) or maximum rounds (boosting)")
    # bagging
    sample: Literal["bootstrap", "subsample"] = Field(
        "bootstrap", description="bootstrap: questions drawn with replacement; subsample: without"
    )
    subsample_frac: float = Field(0.5, gt=0, le=1, description="subsample: fraction of questions per bag")
    vote: Literal["auto", "soft", "majority"] = Field("auto", description="auto: chosen on select_on")
    select_n: bool = Field(True, description="choose the number of bags 1..n on select_on")
    select_on: Literal["oob", "val"] = "oob"
    # boosting
    weighting: Literal["loss", "resample"] = Field(
        "loss", description="sample weights in the loss, or a weighted resample of the rows"
    )

    @property
    def source(self) -> str:
        return self.name or self.method


class EnsembleResult(BaseModel):
    source: str
    method: str
    trained: int = Field(description="members trained")
    used: int = Field(description="members in the final vote")
    vote: str
    selected_on: str
    curve: list[tuple[int, str, float]] = Field(
        default_factory=list, description="bagging: (bags, vote, OOB or val accuracy)"
    )
    errors: list[float] = Field(default_factory=list, description="boosting: weighted training error e_t")
    alphas: list[float] = Field(default_factory=list, description="boosting: member weights α_t")
    seconds: list[float] = Field(default_factory=list, description="training + prediction time per member")


def draw_rows(
    qids: Sequence[str], rng: np.random.Generator, sample: str = "bootstrap", frac: float = 0.5
) -> np.ndarray:
    """Row indices of one bag, drawn by *question* so both rows of a question go in together (an
    out-of-bag row never has its sibling in the bag). Bootstrap repeats a question as often as it
    is drawn."""
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(qids):
        groups.setdefault(q, []).append(i)
    keys = list(groups)
    if sample == "bootstrap":
        picked = rng.integers(0, len(keys), len(keys))
    else:
        picked = rng.choice(len(keys), max(1, round(frac * len(keys))), replace=False)
    return np.array([i for g in picked for i in groups[keys[g]]], dtype=int)


def combine(probs: np.ndarray, vote: str, alphas: np.ndarray | None = None) -> np.ndarray:
    """(M, N) member p(true) → (N,) ensemble p(true): the (weighted) mean of the members'
    probabilities (soft) or of their hard votes (majority; a tie gives 0.5, read as false)."""
    x = probs if vote == "soft" else (probs > 0.5).astype(float)
    w = np.ones(len(probs)) if alphas is None else np.asarray(alphas, dtype=float)
    return (w[:, None] * x).sum(0) / w.sum()


def oob_accuracy(train_probs: np.ndarray, inbag: np.ndarray, gold: np.ndarray, k: int, vote: str) -> float:
    """Accuracy of the first k bags' vote on each row, using only bags that did not see it.
    Rows in every one of the k bags are skipped; NaN if no row is left."""
    out = ~inbag[:k]
    covered = out.any(0)
    if not covered.any():
        return math.nan
    x = train_probs[:k] if vote == "soft" else (train_probs[:k] > 0.5).astype(float)
    p = (x * out).sum(0)[covered] / out.sum(0)[covered]
    return float(np.mean((p > 0.5) == (gold[covered] > 0.5)))


PERFECT_ALPHA = 1.0  # weight of a member with no weighted training error (sklearn's choice)


def samme_step(weights: np.ndarray, miss: np.ndarray) -> tuple[float, float, np.ndarray]:
    """One AdaBoost SAMME update for two classes: e = Σ w·miss / Σ w, α = ln((1 − e)/e) (the
    ln(K − 1) term is 0), w ← w·exp(α·miss), renormalised. Returns (e, α, new weights).

    A perfect round (e = 0) has an infinite α in theory; like sklearn's AdaBoostClassifier it gets
    α = PERFECT_ALPHA and boosting stops there (nothing is left to reweight). A perfect fit on the
    training rows is usually overfitting, so it must not outvote every earlier member (a floor on
    e such as 1e-12 gave it α ≈ 27.6)."""
    w = np.asarray(weights, dtype=float)
    e = float((w * miss).sum() / w.sum())
    if e <= 0:
        return 0.0, PERFECT_ALPHA, w / w.sum()
    alpha = math.log((1 - e) / e) if e < 1 else -math.inf
    new = w * np.exp(alpha * miss) if e < 0.5 else w
    return e, alpha, new / new.sum()


def bagging(
    rows: Sequence[Example],
    gold: np.ndarray,
    fit: Fit,
    targets: dict[str, Sequence[Example]],
    cfg: EnsembleConfig,
    *,
    seed: int = 0,
    val_gold: np.ndarray | None = None,
) -> tuple[EnsembleResult, dict[str, np.ndarray]]:
    """Train cfg.n bags; choose how many to use and the vote on OOB rows (or on targets["val"]
    against `val_gold`); return the result and the ensemble's p(true) on every target split."""
    if cfg.select_on == "val" and (val_gold is None or "val" not in targets):
        raise ValueError("select_on: val needs the val split among the targets and its gold labels")
    rng = np.random.default_rng(seed)
    qids = [e.qid for e in rows]
    inbag = np.zeros((cfg.n, len(rows)), dtype=bool)
    member: dict[str, list[np.ndarray]] = {k: [] for k in ["train", *targets]}
    seconds = []
    for b in range(cfg.n):
        t0 = time.perf_counter()
        idx = draw_rows(qids, rng, cfg.sample, cfg.subsample_frac)
        inbag[b, idx] = True
        predict = fit([rows[i] for i in idx], gold[idx], None, seed + b)
        member["train"].append(predict(rows))
        for k, split in targets.items():
            member[k].append(predict(split))
        del predict
        seconds.append(time.perf_counter() - t0)
        log.info("bag %d/%d: %d rows, %.1f s", b + 1, cfg.n, len(idx), seconds[-1])
    probs = {k: np.stack(v) for k, v in member.items()}

    votes: list[str] = ["soft", "majority"] if cfg.vote == "auto" else [cfg.vote]
    sizes = range(1, cfg.n + 1) if cfg.select_n else [cfg.n]
    curve = []
    for k in sizes:
        for v in votes:
            if cfg.select_on == "oob":
                score = oob_accuracy(probs["train"], inbag, gold, k, v)
            else:
                score = float(np.mean((combine(probs["val"][:k], v) > 0.5) == (val_gold > 0.5)))
            curve.append((k, v, score))
    # Best score; ties go to fewer bags, then to the order of `votes` (soft first).
    best_k, best_v, _ = max(curve, key=lambda c: (np.nan_to_num(c[2], nan=-1.0), -c[0], -votes.index(c[1])))
    result = EnsembleResult(
        source=cfg.source,
        method="bagging",
        trained=cfg.n,
        used=best_k,
        vote=best_v,
        selected_on=cfg.select_on,
        curve=curve,
        seconds=seconds,
    )
    return result, {k: combine(probs[k][:best_k], best_v) for k in targets}


def boosting(
    rows: Sequence[Example],
    gold: np.ndarray,
    fit: Fit,
    targets: dict[str, Sequence[Example]],
    cfg: EnsembleConfig,
    *,
    seed: int = 0,
) -> tuple[EnsembleResult, dict[str, np.ndarray]]:
    """AdaBoost SAMME for up to cfg.n rounds, stopping when a round's weighted error e_t ≥ 0.5
    (that round is dropped, unless it is the first) or 0. Soft labels: Σ α_t·[h_t = 1] / Σ α_t."""
    rng = np.random.default_rng(seed)
    y = gold > 0.5
    w = np.full(len(rows), 1.0 / len(rows))
    errors, alphas, seconds = [], [], []
    member: dict[str, list[np.ndarray]] = {k: [] for k in targets}
    for t in range(cfg.n):
        t0 = time.perf_counter()
        if cfg.weighting == "loss":
            predict = fit(rows, gold, w, seed + t)
        else:
            idx = rng.choice(len(rows), len(rows), replace=True, p=w)
            predict = fit([rows[i] for i in idx], gold[idx], None, seed + t)
        miss = (predict(rows) > 0.5) != y
        e, alpha, w_next = samme_step(w, miss)
        errors.append(e)
        log.info("round %d/%d: weighted error %.4f, alpha %.4f", t + 1, cfg.n, e, alpha)
        if e >= 0.5 and t > 0:  # no better than chance on the reweighted data: stop, drop it
            seconds.append(time.perf_counter() - t0)
            break
        # A first round at or below chance is kept alone with weight 1 (there is nothing else).
        alphas.append(alpha if e < 0.5 else 1.0)
        for k, split in targets.items():
            member[k].append(predict(split))
        del predict
        seconds.append(time.perf_counter() - t0)
        if e >= 0.5 or e == 0:  # chance, or a perfect learner: nothing left to reweight
            break
        w = w_next
    result = EnsembleResult(
        source=cfg.source,
        method="boosting",
        trained=len(errors),
        used=len(alphas),
        vote="weighted majority",
        selected_on="-",
        errors=errors,
        alphas=alphas,
        seconds=seconds,
    )
    a = np.asarray(alphas)
    return result, {k: combine(np.stack(v), "majority", a) for k, v in member.items()}


def run_ensemble(
    rows: Sequence[Example],
    gold: np.ndarray,
    fit: Fit,
    targets: dict[str, Sequence[Example]],
    cfg: EnsembleConfig,
    *,
    seed: int = 0,
    val_gold: np.ndarray | None = None,
) -> tuple[EnsembleResult, dict[str, np.ndarray]]:
    if cfg.method == "bagging":
        return bagging(rows, gold, fit, targets, cfg, seed=seed, val_gold=val_gold)
    return boosting(rows, gold, fit, targets, cfg, seed=seed)
