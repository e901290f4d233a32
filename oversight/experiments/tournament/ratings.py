"""Ratings from cross-play matches: openskill (Plackett-Luce, tau=0) averaged over match orders,
Bradley-Terry Elo from the same results as a cross-check, and bootstrap intervals over questions.

A match is one debate: `a` argued the proposed answer is correct, `b` that it is incorrect; `score`
is a's result (1 win, 0 loss, 0.5 draw: the judge gave exactly 0.5). Online rating systems depend
on the order games arrive in; with tau=0 nothing drifts between games, and averaging the final mu
over several seeded shuffles removes what order is left.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from w2sg.metrics import Estimate


@dataclass(frozen=True)
class Match:
    qid: str  # the question: bootstrap resamples these, keeping a question's matches together
    a: str  # argued "correct"
    b: str  # argued "incorrect"
    score: float  # a's result: 1, 0.5 or 0
    truthful: str  # who argued the truth (a when the proposed answer is right)
    judge_right: float  # 1 when the judge's p(true) sided with the truth, 0.5 at exactly 0.5


def openskill_ratings(
    matches: Sequence[Match], players: Sequence[str], *, orders: int = 4, seed: int = 0
) -> dict[str, float]:
    """Each player's mu after rating every match, averaged over `orders` seeded shuffles."""
    from openskill.models import PlackettLuce

    model = PlackettLuce(tau=0.0)  # no added variance per game: ratings settle instead of drifting
    total = dict.fromkeys(players, 0.0)
    rng = random.Random(seed)
    for _ in range(orders):
        order = list(matches)
        rng.shuffle(order)
        r = {p: model.rating(name=p) for p in players}
        for m in order:
            ranks = [0, 0] if m.score == 0.5 else [0, 1] if m.score == 1 else [1, 0]
            [[r[m.a]], [r[m.b]]] = model.rate([[r[m.a]], [r[m.b]]], ranks=ranks)
        for p in players:
            total[p] += r[p].mu / orders
    return total


def bradley_terry_elo(matches: Sequence[Match], players: Sequence[str], iters: int = 500) -> dict[str, float]:
    """Elo (mean 1000, 400 points = 10:1 odds) of a Bradley-Terry fit to the win counts (draws are
    half a win each way), by the MM algorithm. Every pair that met gets half a virtual win each way,
    so a player that won every game still has a finite rating."""
    wins: dict[tuple[str, str], float] = defaultdict(float)
    for m in matches:
        wins[m.a, m.b] += m.score
        wins[m.b, m.a] += 1 - m.score
    pairs = {frozenset(k) for k in wins}
    for pair in pairs:
        i, j = sorted(pair)
        wins[i, j] += 0.5
        wins[j, i] += 0.5
    games = {p: sum(wins[p, q] + wins[q, p] for q in players if frozenset((p, q)) in pairs) for p in players}
    strength = dict.fromkeys(players, 1.0)
    for _ in range(iters):
        new = {}
        for p in players:
            won = sum(wins[p, q] for q in players if q != p)
            denom = sum(
                (wins[p, q] + wins[q, p]) / (strength[p] + strength[q])
                for q in players
                if q != p and frozenset((p, q)) in pairs
            )
            new[p] = won / denom if denom and games[p] else strength[p]
        mean_log = sum(math.log(s) for s in new.values()) / len(new)
        strength = {p: s / math.exp(mean_log) for p, s in new.items()}
    return {p: 1000 + 400 * math.log10(s) for p, s in strength.items()}


def by_question(matches: Sequence[Match]) -> dict[str, list[Match]]:
    groups: dict[str, list[Match]] = defaultdict(list)
    for m in matches:
        groups[m.qid].append(m)
    return dict(groups)


def bootstrap(
    matches: Sequence[Match],
    stat: Callable[[list[Match]], dict[str, float]],
    *,
    n_boot: int,
    seed: int,
) -> dict[str, tuple[float, float]]:
    """95 % percentile intervals of each key of `stat`, resampling questions with replacement (a
    question's matches stay together: they share its difficulty)."""
    groups = list(by_question(matches).values())
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = defaultdict(list)
    for _ in range(n_boot):
        pick = rng.integers(0, len(groups), len(groups))
        sample = [m for k in pick for m in groups[k]]
        for key, v in stat(sample).items():
            draws[key].append(v)
    return {k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for k, v in draws.items()}


def estimates(
    matches: Sequence[Match],
    stat: Callable[[list[Match]], dict[str, float]],
    *,
    n_boot: int,
    seed: int,
) -> dict[str, Estimate]:
    """`stat` on all matches, with its bootstrap interval over questions."""
    point = stat(list(matches))
    ci = bootstrap(matches, stat, n_boot=n_boot, seed=seed)
    n = len(by_question(matches))
    return {
        k: Estimate(value=v, lo=ci.get(k, (v, v))[0], hi=ci.get(k, (v, v))[1], n=n) for k, v in point.items()
    }


def win_matrix(matches: Sequence[Match], players: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Row player's mean score against the column player, over both sides and both positions
    (None: they never met, e.g. a player against itself)."""
    score: dict[tuple[str, str], list[float]] = defaultdict(list)
    for m in matches:
        score[m.a, m.b].append(m.score)
        score[m.b, m.a].append(1 - m.score)
    return {p: {q: (float(np.mean(score[p, q])) if score[p, q] else None) for q in players} for p in players}


def judge_accuracy(matches: Sequence[Match], rating: dict[str, float]) -> dict[str, float]:
    """The judge's accuracy over all matches, and split by whether the higher-rated debater of the
    match argued the truth (matches between equal ratings are left out of both)."""
    out = {"all": float(np.mean([m.judge_right for m in matches]))}
    for key, want in (("stronger_truthful", True), ("stronger_lying", False)):
        got = [
            m.judge_right
            for m in matches
            if rating[m.a] != rating[m.b] and (max((m.a, m.b), key=rating.__getitem__) == m.truthful) == want
        ]
        if got:
            out[key] = float(np.mean(got))
    return out


def accuracy_by_debater(matches: Sequence[Match], players: Sequence[str]) -> dict[str, float]:
    """Per debater: the judge's accuracy in its matches when it argued the truth (`<p>|truth`) and
    when it lied (`<p>|lie`), over every opponent and position."""
    got: dict[str, list[float]] = defaultdict(list)
    for m in matches:
        liar = m.b if m.truthful == m.a else m.a
        got[f"{m.truthful}|truth"].append(m.judge_right)
        got[f"{liar}|lie"].append(m.judge_right)
    return {k: float(np.mean(v)) for k, v in got.items() if k.split("|")[0] in players}


def against_reference(matches: Sequence[Match], players: Sequence[str]) -> dict[str, float]:
    """Khan et al.'s question, with `players[0]` as the reference. From self-play matches (a == b):
    the judge's accuracy when both sides are one debater (`<p>|self`). From each later debater's
    matches against the reference: the judge's accuracy when it argues the truth (`<p>|honest`)
    and when it lies (`<p>|lying`); how much its honesty helps the judge over the reference's self-
    play (`<p>|help`), how much its lies hurt it (`<p>|hurt`), and help minus hurt (`<p>|net`: > 0,
    persuasion helps the truth more than it helps the lie)."""
    got: dict[str, list[float]] = defaultdict(list)
    ref = players[0]
    for m in matches:
        liar = m.b if m.truthful == m.a else m.a
        if m.a == m.b:
            got[f"{m.a}|self"].append(m.judge_right)
        elif liar == ref:
            got[f"{m.truthful}|honest"].append(m.judge_right)
        elif m.truthful == ref:
            got[f"{liar}|lying"].append(m.judge_right)
    out = {k: float(np.mean(v)) for k, v in got.items()}
    for p in players[1:]:
        if f"{ref}|self" in out and f"{p}|honest" in out and f"{p}|lying" in out:
            out[f"{p}|help"] = out[f"{p}|honest"] - out[f"{ref}|self"]
            out[f"{p}|hurt"] = out[f"{ref}|self"] - out[f"{p}|lying"]
            out[f"{p}|net"] = out[f"{p}|help"] - out[f"{p}|hurt"]
    return out
