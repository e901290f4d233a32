"""Bagging draws a real bootstrap by question and selects on out-of-bag rows only; AdaBoost SAMME
matches a hand-computed example; ensembles plug into the experiment as label sources."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.names import resolve_model_path
from w2sg.data import Example, make_example
from w2sg.ensembles import (
    PERFECT_ALPHA,
    EnsembleConfig,
    bagging,
    boosting,
    combine,
    draw_rows,
    oob_accuracy,
    samme_step,
)
from w2sg.experiment import Sizes, W2SGConfig, run_experiment
from w2sg.models import FeatureHead, ModelConfig
from w2sg.train import TrainConfig, predict, train


def paired_rows(n_questions: int) -> list[Example]:
    """Two rows per question, like binarized SciQ."""
    return [make_example(f"q{i}", f"a{i}-{j}", j) for i in range(n_questions) for j in (1, 0)]


def test_bootstrap_draws_questions_with_replacement_and_keeps_siblings_together() -> None:
    rows = paired_rows(500)
    qids = [e.qid for e in rows]
    idx = draw_rows(qids, np.random.default_rng(0))
    assert len(idx) == len(rows)
    drawn = [qids[i] for i in idx]
    counts = {q: drawn.count(q) for q in set(drawn)}
    assert max(counts.values()) >= 4 and set(counts.values()) <= {2 * k for k in range(1, 20)}
    # A bootstrap holds 1 - 1/e ≈ 63.2% of the distinct questions.
    assert 0.58 < len(counts) / 500 < 0.68
    assert np.array_equal(idx, draw_rows(qids, np.random.default_rng(0)))
    sub = draw_rows(qids, np.random.default_rng(1), "subsample", 0.3)
    assert len(sub) == len(set(sub.tolist())) == 2 * 150


def test_combine_votes() -> None:
    probs = np.array([[0.9, 0.4, 0.6], [0.6, 0.45, 0.2], [0.2, 0.3, 0.55]])
    assert np.allclose(combine(probs, "soft"), [1.7 / 3, 1.15 / 3, 1.35 / 3])
    assert np.allclose(combine(probs, "majority"), [2 / 3, 0, 2 / 3])
    assert np.allclose(combine(probs, "majority", np.array([1.0, 2.0, 1.0])), [0.75, 0, 0.5])


def test_oob_accuracy_uses_only_bags_that_did_not_see_the_row() -> None:
    gold = np.array([1, 0, 1, 0])
    probs = np.array([[0.9, 0.2, 0.1, 0.9], [0.1, 0.9, 0.8, 0.9]])
    inbag = np.array([[True, False, False, True], [False, True, False, True]])
    # Two bags. Row 0: bag 1 only (0.1, wrong); row 1: bag 0 only (0.2, right); row 2: both, soft
    # mean 0.45 and majority 0.5 both read false (wrong); row 3 is in both bags and is skipped.
    assert oob_accuracy(probs, inbag, gold, 2, "soft") == pytest.approx(1 / 3)
    assert oob_accuracy(probs, inbag, gold, 2, "majority") == pytest.approx(1 / 3)
    # First bag only: rows 1 (0.2, right) and 2 (0.1, wrong).
    assert oob_accuracy(probs, inbag, gold, 1, "soft") == pytest.approx(0.5)
    assert math.isnan(oob_accuracy(probs, np.ones_like(inbag), gold, 2, "soft"))


def test_samme_step_by_hand() -> None:
    e, alpha, w = samme_step(np.full(5, 0.2), np.array([0, 0, 0, 0, 1], dtype=bool))
    assert e == pytest.approx(0.2) and alpha == pytest.approx(math.log(4))
    assert np.allclose(w, [0.125, 0.125, 0.125, 0.125, 0.5])


# Three fixed weak learners on five rows with gold [1, 1, 0, 0, 1]; each misses one row.
STUMPS = [np.array([1, 1, 0, 0, 0]), np.array([1, 0, 0, 0, 1]), np.array([0, 1, 0, 0, 1])]


def test_adaboost_three_rounds_match_hand_computation() -> None:
    rows = [make_example(f"q{i}", "a", int(g)) for i, g in enumerate([1, 1, 0, 0, 1])]
    gold = np.array([1.0, 1, 0, 0, 1])
    pos = {e.id: i for i, e in enumerate(rows)}
    seen_weights = []

    def fit(xs: Sequence[Example], labels: np.ndarray, weights: np.ndarray | None, seed: int):
        assert weights is not None and [e.id for e in xs] == [e.id for e in rows]
        seen_weights.append(weights.copy())
        # The learner minimising the weighted error (first on ties), as a stump search would.
        errs = [float(weights @ (h != labels)) for h in STUMPS]
        h = STUMPS[int(np.argmin(errs))]
        return lambda ys: h[[pos[e.id] for e in ys]].astype(float)

    cfg = EnsembleConfig(method="boosting", n=3)
    res, out = boosting(rows, gold, fit, {"test": rows}, cfg)
    # Round 1: uniform weights, stump 0 misses row 4: e = 1/5, α = ln 4; row 4 weight ×4.
    # Round 2: stump 1 (ties with 2 at 1/8, first wins) misses row 1: e = 1/8, α = ln 7.
    # Round 3: weights [1/14, 1/2, 1/14, 1/14, 2/7]; stump 2 misses row 0: e = 1/14, α = ln 13.
    assert np.allclose(seen_weights[0], [0.2] * 5)
    assert np.allclose(seen_weights[1], [0.125, 0.125, 0.125, 0.125, 0.5])
    assert np.allclose(seen_weights[2], [1 / 14, 0.5, 1 / 14, 1 / 14, 2 / 7])
    assert np.allclose(res.errors, [0.2, 0.125, 1 / 14])
    assert np.allclose(res.alphas, [math.log(4), math.log(7), math.log(13)])
    # Soft labels: Σ α·[h = 1] / Σ α, with Σ α = ln 364.
    total = math.log(364)
    assert np.allclose(out["test"], [math.log(28) / total, math.log(52) / total, 0, 0, math.log(91) / total])
    assert res.used == res.trained == 3


def test_boosting_stops_when_a_round_is_no_better_than_chance() -> None:
    rows = [make_example(f"q{i}", "a", i % 2) for i in range(4)]
    gold = np.array([0.0, 1, 0, 1])
    preds = iter([np.array([0.0, 1, 0, 0]), np.array([1.0, 0, 1, 1])])  # e = 1/4, then e > 1/2

    def fit(xs: Sequence[Example], labels: np.ndarray, weights: np.ndarray | None, seed: int):
        h = next(preds)
        return lambda ys: h if len(ys) == 4 else h[: len(ys)]

    res, out = boosting(rows, gold, fit, {"test": rows}, EnsembleConfig(method="boosting", n=5))
    assert res.trained == 2 and res.used == 1 and res.errors[1] >= 0.5
    assert np.allclose(out["test"], [0, 1, 0, 0])


def synthetic(
    n_questions: int, seed: int, noise: float = 2.0
) -> tuple[list[Example], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    rows, feats = [], {}
    for e in [make_example(f"s{seed}q{i}", f"a{j}", j) for i in range(n_questions) for j in (1, 0)]:
        feats[e.id] = noise * torch.randn(8, generator=g) + (1.0 if e.label else -1.0) * torch.ones(8) * 0.5
        rows.append(e)
    return rows, feats


def test_bagging_selects_on_out_of_bag_rows_and_never_sees_test() -> None:
    tr, f1 = synthetic(60, 0)
    va, f2 = synthetic(20, 1)
    te, f3 = synthetic(50, 2)
    feats = {**f1, **f2, **f3}
    test_ids = {e.id for e in te}
    trained_on: list[set[str]] = []

    def fit(xs: Sequence[Example], labels: np.ndarray, weights: np.ndarray | None, seed: int):
        trained_on.append({e.id for e in xs})
        torch.manual_seed(seed)  # the head's initial weights
        model = FeatureHead(feats, [e.id for e in xs])
        tcfg = TrainConfig(lr=1e-2, epochs=3, batch_size=16, eval_every=5, device="cpu", seed=seed)
        train(model, xs, list(labels), va, [float(e.label) for e in va], tcfg)
        return lambda ys: predict(model, ys, device="cpu")

    gold = np.array([float(e.label) for e in tr])
    cfg = EnsembleConfig(method="bagging", n=4)
    res, out = bagging(tr, gold, fit, {"val": va, "test": te}, cfg, seed=3)
    assert len(trained_on) == 4 and not any(ids & test_ids for ids in trained_on)
    assert res.used in range(1, 5) and res.vote in ("soft", "majority")
    assert len(res.curve) == 8 and all(0 <= c[2] <= 1 for c in res.curve)
    assert out["test"].shape == (len(te),) and ((out["test"] >= 0) & (out["test"] <= 1)).all()
    # The choice depends on training data only: other test rows give the same selection.
    te2, f4 = synthetic(30, 9)
    feats.update(f4)
    res2, _ = bagging(tr, gold, fit, {"val": va, "test": te2}, cfg, seed=3)
    assert (res2.used, res2.vote, res2.curve) == (res.used, res.vote, res.curve)
    with pytest.raises(ValueError, match="select_on: val"):
        bagging(tr, gold, fit, {"test": te}, EnsembleConfig(method="bagging", select_on="val"))


def test_ensemble_names_are_checked() -> None:
    base = {"weak": {"kind": "features", "path": "x"}, "strong": {"kind": "features", "path": "y"}}
    with pytest.raises(ValueError, match="unique"):
        W2SGConfig.model_validate({**base, "ensembles": [{"method": "bagging"}, {"method": "bagging"}]})
    with pytest.raises(ValueError, match="unique"):
        W2SGConfig.model_validate({**base, "ensembles": [{"method": "boosting", "name": "weak"}]})


def test_experiment_reports_bagging_and_boosting_as_label_sources(tmp_path: Path) -> None:
    tiny = ModelConfig(kind="features", path="embedded/tiny-gpt2", max_length=48)
    tcfg = TrainConfig(lr=1e-3, epochs=2, batch_size=16, eval_every=4, device="cpu")
    cfg = W2SGConfig(
        name="ens",
        sizes=Sizes(weak=30, strong=30, val=15, test=20),
        weak=tiny,
        weak_train=tcfg,
        strong=tiny.model_copy(update={"pooling": "mean"}),
        strong_train=tcfg,
        label_sources=["weak", "bagging", "boosting"],
        ensembles=[EnsembleConfig(method="bagging", n=3), EnsembleConfig(method="boosting", n=3)],
        n_boot=200,
        out_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
    )
    result = run_experiment(cfg, resolve=resolve_model_path)
    assert [s.source for s in result.sources] == ["weak", "bagging", "boosting"]
    assert {e.method for e in result.ensembles} == {"bagging", "boosting"}
    assert all(s.floor_split == "test" for s in result.sources)
    bag = next(e for e in result.ensembles if e.method == "bagging")
    assert bag.trained == 3 and len(bag.seconds) == 3
    table = (tmp_path / "runs" / result.run_id / "results.md").read_text()
    assert "| bagging |" in table and "| boosting |" in table and "Ensembles" in table
    saved = np.load(tmp_path / "runs" / result.run_id / "predictions.npz")
    assert {"floor__weak", "floor__bagging", "floor__boosting"} <= set(saved.files)


def test_samme_caps_a_perfect_round_like_sklearn() -> None:
    # e = 0: alpha is PERFECT_ALPHA (1, as sklearn), not ln((1 - e) / 1e-12) ≈ 27.6, which let one
    # member outvote every other.
    e, alpha, w = samme_step(np.full(4, 0.25), np.zeros(4, dtype=bool))
    assert e == 0.0 and alpha == PERFECT_ALPHA == 1.0 and np.allclose(w, 0.25)
    # Two earlier members that agree outvote a perfect third on a row where it is alone.
    votes = np.array([[0.9], [0.9], [0.1]])
    alphas = np.array([math.log(4), math.log(4), PERFECT_ALPHA])
    assert combine(votes, "majority", alphas)[0] > 0.5
