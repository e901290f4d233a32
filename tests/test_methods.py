"""W2SG methods (w2sg.methods) against cases whose effect is known, the losses window / entropy /
kl by hand, methods in `w2sg train`, and gold kept out of method code."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_seeds import tiny_config

from w2sg.data import make_example
from w2sg.experiment import W2SGConfig
from w2sg.losses import EntropyLoss, KLLoss, WindowLoss, XentLoss
from w2sg.methods import (
    METHODS,
    GoldAccessError,
    Labels,
    Method,
    MethodInput,
    Supervision,
    blind_pool,
    build_method,
)

# ---------------------------------------------------------------- a method's input, made by hand


def clusters(n: int, seed: int, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Two well-separated Gaussian clusters (class 1 around +3, class 0 around -3): features, truth."""
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % 2
    x = rng.normal(size=(n, dim)) + np.where(truth[:, None] == 1, 3.0, -3.0)
    return x.astype(np.float32), truth


def method_input(
    labels: np.ndarray,
    val_labels: np.ndarray,
    feats: dict[str, np.ndarray] | None = None,
    fit: object = None,
    method: str = "m",
) -> MethodInput:
    rows = {
        k: [make_example(f"{k} q{i}", f"a{i}", 0) for i in range(len(p))]
        for k, p in (("strong", labels), ("val", val_labels))
    }

    def features(model: str, split: str) -> np.ndarray:
        assert feats is not None and model == "strong"
        return feats[split]

    def no_fit(*_: object) -> tuple[np.ndarray, np.ndarray]:
        raise AssertionError("this method trains no student")

    return MethodInput(
        method,
        "weak",
        "xent",
        blind_pool("strong", rows["strong"], labels, method),
        blind_pool("val", rows["val"], val_labels, method),
        features,
        fit or no_fit,
    )


def flipped(truth: np.ndarray, rows: np.ndarray) -> np.ndarray:
    labels = truth.astype(float).copy()
    labels[rows] = 1 - labels[rows]
    return labels


def test_vanilla_gives_the_source_labels_on_every_row() -> None:
    labels, val = np.array([0.2, 0.9, 0.6]), np.array([0.4, 0.7])
    sup = build_method("vanilla").supervise(method_input(labels, val))
    assert np.array_equal(sup.strong.p, labels) and np.array_equal(sup.val.p, val)
    assert sup.strong.keep is None and sup.strong.weights is None and sup.val.keep is None


def test_confident_only_keeps_the_share_farthest_from_one_half() -> None:
    labels = np.array([0.5, 0.95, 0.45, 0.1, 0.7, 0.55, 0.0, 0.62])  # |p - 1/2| ranks rows 6, 1, 3, 4
    val = np.array([0.51, 0.99, 0.2, 0.5])
    sup = build_method({"kind": "confident_only", "share": 0.5}).supervise(method_input(labels, val))
    assert np.flatnonzero(sup.strong.keep).tolist() == [1, 3, 4, 6]
    assert np.flatnonzero(sup.val.keep).tolist() == [1, 2]  # the same rule on val
    assert np.array_equal(sup.strong.p, labels)  # kept rows keep their labels
    by_threshold = build_method({"kind": "confident_only", "threshold": 0.3}).supervise(
        method_input(labels, val)
    )
    assert np.flatnonzero(by_threshold.strong.keep).tolist() == [1, 3, 6]
    assert build_method("confident_only").share == 0.5  # the default rule


def test_confident_only_names_itself_when_no_row_passes_its_threshold() -> None:
    m = build_method({"kind": "confident_only", "threshold": 0.45, "name": "sure"})
    with pytest.raises(ValueError, match=r"'sure'.*lower the threshold"):
        m.supervise(method_input(np.array([0.6, 0.3]), np.array([0.5])))


@pytest.mark.parametrize("probe", ["knn", "logreg"])
def test_probe_filter_drops_the_planted_wrong_labels(probe: str) -> None:
    x, truth = clusters(200, 0)
    xv, truth_v = clusters(40, 1)
    wrong = np.random.default_rng(2).choice(200, size=20, replace=False)  # 10% planted
    wrong_v = np.array([3, 10, 21, 30])
    labels, val = flipped(truth, wrong), flipped(truth_v, wrong_v)
    m = build_method({"kind": "probe_filter", "probe": probe, "contamination": 0.1})
    sup = m.supervise(method_input(labels, val, {"strong": x, "val": xv}))
    assert sorted(np.flatnonzero(~sup.strong.keep).tolist()) == sorted(wrong.tolist())
    assert sorted(np.flatnonzero(~sup.val.keep).tolist()) == wrong_v.tolist()
    assert np.array_equal(sup.strong.p, labels)


@pytest.mark.parametrize("probe", ["knn", "logreg"])
def test_probe_relabel_fixes_labels_flipped_in_a_cluster(probe: str) -> None:
    x, truth = clusters(200, 3)
    xv, truth_v = clusters(40, 4)
    # A quarter of the class-1 cluster carries the wrong label.
    wrong = np.flatnonzero(truth == 1)[::4]
    labels = flipped(truth, wrong)
    assert np.mean((labels > 0.5) == truth) == 1 - len(wrong) / 200
    m = build_method({"kind": "probe_relabel", "probe": probe})
    sup = m.supervise(method_input(labels, truth_v.astype(float), {"strong": x, "val": xv}))
    fixed = np.mean((sup.strong.p > 0.5) == truth)
    if probe == "knn":  # every flipped label fixed, none broken
        assert fixed == 1.0 and np.array_equal(sup.val.p > 0.5, truth_v == 1)
    else:  # a linear probe's p(true) slopes across a cluster: its edge rows may stay wrong
        assert fixed >= 0.98 and np.mean((sup.val.p > 0.5) == truth_v) >= 0.95


def test_knn_probe_leaves_each_row_out_of_its_own_vote() -> None:
    # One row, far from the rest, labelled 1 among neighbours all labelled 0: with k = 3 its own
    # label would give 1/3; left out, 0.
    x = np.array([[0.0], [0.1], [0.2], [0.3], [5.0]], dtype=np.float32)
    labels = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    m = build_method({"kind": "probe_relabel", "k": 3})
    sup = m.supervise(method_input(labels, labels[:1], {"strong": x, "val": x[:1]}))
    assert sup.strong.p[0] == 0.0 and sup.val.p[0] == pytest.approx(1 / 3)


@pytest.mark.parametrize("n", [1, 3])
def test_s2s_trains_n_students_each_on_the_last_ones_predictions(n: int) -> None:
    calls: list[tuple[np.ndarray, np.ndarray, str]] = []

    def fit(strong: np.ndarray, val: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
        calls.append((strong, val, what))
        return strong / 2 + 0.25, val / 2 + 0.25  # a student that shrinks its labels toward 1/2

    labels, val = np.array([0.0, 1.0, 0.8]), np.array([1.0, 0.2])
    sup = build_method({"kind": "s2s", "iterations": n}).supervise(method_input(labels, val, fit=fit))
    assert [c[2] for c in calls] == [f"s2s {i}/{n}" for i in range(1, n + 1)]
    assert np.array_equal(calls[0][0], labels) and np.array_equal(calls[0][1], val)
    expected, expected_v = labels, val
    for i in range(n):
        assert np.array_equal(calls[i][0], expected)  # each student learns from the one before
        expected, expected_v = expected / 2 + 0.25, expected_v / 2 + 0.25
    assert np.allclose(sup.strong.p, expected) and np.allclose(sup.val.p, expected_v)


def test_methods_are_one_registry_validated_at_load() -> None:
    assert {"vanilla", "confident_only", "probe_relabel", "probe_filter", "s2s"} <= set(METHODS)
    with pytest.raises(ValueError, match=r"unknown method 'best'.*probe_filter"):
        build_method("best")
    with pytest.raises(ValueError, match="not both"):
        build_method({"kind": "confident_only", "share": 0.3, "threshold": 0.2})
    with pytest.raises(ValueError, match="contamination"):
        build_method({"kind": "probe_filter", "contamination": 1.5})


# ---------------------------------------------------------------- gold stays out of method code


class ReadsGold(Method):
    """Not registered: a method that cheats by reading each row's gold label."""

    kind: str = "reads_gold"

    def supervise(self, inp: MethodInput) -> Supervision:
        gold = np.array([r.label for r in inp.strong.rows], dtype=float)
        return Supervision(Labels(gold), Labels(inp.val.labels))


def test_a_method_that_reads_gold_fails_naming_itself() -> None:
    inp = method_input(np.array([0.3, 0.8]), np.array([0.5]), method="reads_gold")
    with pytest.raises(GoldAccessError, match="method 'reads_gold' read the gold label of row"):
        ReadsGold().supervise(inp)
    row = inp.strong.rows[0]
    for what in ("labels", "source"):  # recorded columns and the record (answer key) are gold too
        with pytest.raises(GoldAccessError):
            getattr(row, what)
    assert not hasattr(row, "__dict__")  # slots: no other place the Example's fields could hide
    with pytest.raises(ValueError, match="read-only"):
        inp.strong.labels[0] = 1.0  # nor can it change the source's column


# ---------------------------------------------------------------- losses by hand

LN3, LN9 = math.log(3.0), math.log(9.0)


def test_window_loss_is_xent_inside_the_window_and_zero_gradient_outside() -> None:
    # p(true) of the rows: 0.5, 0.75 (max 0.75 >= 0.65: outside), 0.9 (outside), 0.6 (inside).
    logits = torch.tensor([[0.0, 0.0], [0.0, LN3], [0.0, LN9], [0.0, math.log(1.5)]], requires_grad=True)
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0])
    loss = WindowLoss(radius=0.15)(logits, labels, 0.5)
    # Sum of the inside rows' cross entropy over the whole batch of 4: (ln 2 - ln 0.6) / 4.
    assert loss.item() == pytest.approx((math.log(2.0) - math.log(0.6)) / 4, rel=1e-6)
    loss.backward()
    assert logits.grad is not None
    assert torch.equal(logits.grad[1:3], torch.zeros(2, 2))  # confident rows: no gradient at all
    # inside: d CE / dz = (softmax(z) - t) / B
    assert torch.allclose(logits.grad[0], torch.tensor([0.5, -0.5]) / 4)
    assert torch.allclose(logits.grad[3], torch.tensor([0.4, -0.4]) / 4)
    sure = torch.tensor([[0.0, LN9], [LN9, 0.0]])
    assert WindowLoss()(sure, torch.tensor([0.0, 1.0]), 0.5).item() == 0.0
    assert WindowLoss(radius=0.5)(sure, torch.tensor([0.0, 1.0]), 0.5) == XentLoss()(
        sure, torch.tensor([0.0, 1.0]), 0.5
    )


def test_entropy_loss_by_hand() -> None:
    # q = [1/4, 3/4], label 0 → t = (1 - c)[1, 0] + c [1/4, 3/4] with c = 0.5 after warm-up.
    logits = torch.tensor([[0.0, LN3]], requires_grad=True)
    loss = EntropyLoss(aux_coef=0.5, warmup_frac=0.1)(logits, torch.tensor([0.0]), 0.5)
    ce = -math.log(0.25)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert loss.item() == pytest.approx(0.5 * ce + 0.5 * h, rel=1e-6)
    loss.backward()
    # The self-target is detached: the gradient is (1 - c)(q - y), half of xent's.
    assert logits.grad is not None
    assert torch.allclose(logits.grad, 0.5 * torch.tensor([[0.25 - 1.0, 0.75]]))
    # At the start of training (c = 0) it is xent.
    z, y = torch.randn(6, 2), torch.rand(6)
    assert EntropyLoss()(z, y, 0.0).item() == pytest.approx(XentLoss()(z, y, 0.0).item(), rel=1e-6)


def test_kl_loss_by_hand() -> None:
    # q = [1/4, 3/4], soft label 0.5 → KL = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75).
    logits = torch.tensor([[0.0, LN3]], requires_grad=True)
    loss = KLLoss()(logits, torch.tensor([0.5]), 0.0)
    assert loss.item() == pytest.approx(0.5 * math.log(2.0) + 0.5 * math.log(2 / 3), rel=1e-6)
    loss.backward()
    assert logits.grad is not None and torch.allclose(logits.grad, torch.tensor([[-0.25, 0.25]]))
    # Zero where the student matches the labels (hard labels included: 0 log 0 = 0), weighted rows.
    assert KLLoss()(torch.tensor([[0.0, LN3]]), torch.tensor([0.75]), 0.0).abs().item() < 1e-6
    hard = KLLoss()(
        torch.tensor([[0.0, LN3], [0.0, 0.0]]), torch.tensor([1.0, 0.0]), 0.0, torch.tensor([2.0, 0.0])
    )
    assert hard.item() == pytest.approx(2 * -math.log(0.75) / 2, rel=1e-6)


# ---------------------------------------------------------------- methods in `w2sg train`


def small_config(tmp_path: Path, **update: object) -> W2SGConfig:
    """test_seeds.py's tiny experiment, with one label source (a recorded column)."""
    return tiny_config(tmp_path, name="methods", label_sources=["weak_p_true"], **update)


def test_run_ids_change_only_with_methods_other_than_vanilla(tmp_path: Path) -> None:
    plain = small_config(tmp_path)
    assert small_config(tmp_path, methods=["vanilla"]).run_id("fp") == plain.run_id("fp")
    other = small_config(tmp_path, methods=["vanilla", "s2s"])
    assert other.run_id("fp") != plain.run_id("fp")


def test_train_makes_a_student_per_source_loss_and_method(tmp_path: Path) -> None:
    from agents.names import resolve_model_path
    from w2sg.experiment import run_experiment

    methods = ["vanilla", {"kind": "probe_filter", "contamination": 0.25}, "confident_only", "s2s"]
    cfg = small_config(tmp_path, methods=methods, losses=["xent", "window"])
    result = run_experiment(cfg, resolve=resolve_model_path)
    got = [(s.loss, s.method) for s in result.students]
    assert got == [
        (loss, m) for loss in ("xent", "window") for m in ("vanilla", "probe_filter", "confident_only", "s2s")
    ]
    n = result.sizes["strong"]
    rows = {s.method: s.rows for s in result.students if s.loss == "xent"}
    assert rows == {
        "vanilla": None,
        "probe_filter": n - int(0.25 * n),
        "confident_only": round(0.5 * n),
        "s2s": None,
    }
    run = tmp_path / "runs" / result.run_id
    saved = np.load(run / "predictions.npz")
    assert "student__weak_p_true__xent" in saved.files  # vanilla keeps the column it always had
    assert "student__weak_p_true__window__probe_filter" in saved.files
    assert "| xent · s2s |" in (run / "results.md").read_text()


class PeeksAtGold(Method):
    kind: str = "peeks_at_gold"

    def supervise(self, inp: MethodInput) -> Supervision:
        _ = [r.label for r in inp.val.rows]
        raise AssertionError("gold was readable")


def test_a_method_reading_gold_in_an_experiment_fails(tmp_path: Path) -> None:
    from agents.names import resolve_model_path
    from w2sg.experiment import run_experiment

    cfg = small_config(tmp_path)
    cfg = cfg.model_copy(update={"methods": [PeeksAtGold()]})
    with pytest.raises(GoldAccessError, match="method 'peeks_at_gold' read the gold label"):
        run_experiment(cfg, resolve=resolve_model_path)


def test_w2sg_run_refuses_methods_other_than_vanilla_for_now() -> None:
    """Its report keys students by (source, loss): a second method would hide the first."""
    from oversight.experiments.run.config import RunConfig

    tiny = {"kind": "features", "path": "embedded/tiny-gpt2", "max_length": 48}
    blind = {"kind": "debate", "protocol": "blind", "judge": "trained"}
    base = {"protocols": {"blind": blind}, "weak": tiny, "strong": tiny}
    assert [m.label for m in RunConfig.model_validate(base).methods] == ["vanilla"]
    with pytest.raises(ValueError, match="`w2sg run` trains vanilla students only for now"):
        RunConfig.model_validate({**base, "methods": ["vanilla", "confident_only"]})
