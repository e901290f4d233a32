"""`w2sg tournament`: ratings move the right way (fitted on matches with a known order of
strength, and on a scripted tournament with a known winner), intervals, win matrix, judge
accuracy by who argues the truth, and a rerun redoes no debate."""

from __future__ import annotations

import math
import random

import pytest

from oversight.tournament.ratings import (
    Match,
    accuracy_by_debater,
    bradley_terry_elo,
    estimates,
    judge_accuracy,
    openskill_ratings,
    win_matrix,
)

PLAYERS = ["strong", "middle", "weak"]


def simulated(questions: int = 60, seed: int = 0) -> list[Match]:
    """Cross-play with Bradley-Terry strengths 2 > 1 > 0: each ordered pair twice per question."""
    strength = {"strong": 2.0, "middle": 1.0, "weak": 0.0}
    rng = random.Random(seed)
    out = []
    for q in range(questions):
        for a in PLAYERS:
            for b in PLAYERS:
                if a == b:
                    continue
                for _ in range(2):
                    win = rng.random() < 1 / (1 + math.exp(strength[b] - strength[a]))
                    truthful = a if rng.random() < 0.5 else b
                    right = float((a if win else b) == truthful)
                    out.append(Match(str(q), a, b, float(win), truthful, right))
    return out


def test_ratings_order_the_players_by_strength() -> None:
    matches = simulated()
    mu = openskill_ratings(matches, PLAYERS, orders=4)
    elo = bradley_terry_elo(matches, PLAYERS)
    assert mu["strong"] > mu["middle"] > mu["weak"]
    assert elo["strong"] > elo["middle"] > elo["weak"]
    assert abs(sum(elo.values()) / 3 - 1000) < 1e-6
    # one logit of strength is 400 / ln 10 = 174 Elo points; the virtual draws shrink it a little
    assert 100 < elo["strong"] - elo["middle"] < 250 and 100 < elo["middle"] - elo["weak"] < 250


def test_ratings_do_not_depend_on_the_order_matches_are_listed() -> None:
    matches = simulated()
    mu = openskill_ratings(matches, PLAYERS, orders=8, seed=3)
    again = openskill_ratings(list(reversed(matches)), PLAYERS, orders=8, seed=3)
    assert all(abs(mu[p] - again[p]) < 0.5 for p in PLAYERS)  # tau=0 and averaged orders: no drift


def test_intervals_cover_the_estimate_and_separate_strong_from_weak() -> None:
    matches = simulated()
    est = estimates(matches, lambda m: bradley_terry_elo(m, PLAYERS), n_boot=100, seed=0)
    assert all(e.lo <= e.value <= e.hi and e.n == 60 for e in est.values())
    assert est["weak"].hi < est["strong"].lo
    few = estimates(simulated(questions=6), lambda m: bradley_terry_elo(m, PLAYERS), n_boot=100, seed=0)
    assert few["strong"].hi - few["strong"].lo > est["strong"].hi - est["strong"].lo  # fewer questions, wider


def test_win_matrix_and_judge_accuracy() -> None:
    matches = [
        Match("q1", "a", "b", 1.0, "a", 1.0),  # a argued the truth and won: the judge was right
        Match("q1", "b", "a", 0.0, "b", 0.0),  # b argued the truth, a won: the judge was wrong
        Match("q2", "a", "b", 0.5, "a", 0.5),  # a draw
    ]
    wm = win_matrix(matches, ["a", "b"])
    assert wm["a"]["b"] == pytest.approx(2.5 / 3) and wm["b"]["a"] == pytest.approx(0.5 / 3)
    assert wm["a"]["a"] is None
    acc = judge_accuracy(matches, {"a": 30.0, "b": 20.0})
    assert acc == {"all": 0.5, "stronger_truthful": 0.75, "stronger_lying": 0.0}
    by = accuracy_by_debater(matches, ["a", "b"])
    assert by == {"a|truth": 0.75, "b|lie": 0.75, "b|truth": 0.0, "a|lie": 0.0}
