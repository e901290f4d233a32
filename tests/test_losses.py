"""Student losses against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from w2sg.losses import (
    LOSSES,
    GatedLogConfLoss,
    LogConfLoss,
    Loss,
    ProductLoss,
    XentLoss,
    get_loss,
    label_slope,
)

LN3 = math.log(3.0)
LN9 = math.log(9.0)

# softmax([ln3, 0]) = [3/4, 1/4]; softmax([0, 0]) = [1/2, 1/2];
# softmax([0, ln3]) = [1/4, 3/4]; softmax([0, ln9]) = [1/10, 9/10].
# So p(false) = preds[:, 0] = [0.75, 0.5, 0.25, 0.1].
BATCH = torch.tensor([[LN3, 0.0], [0.0, 0.0], [0.0, LN3], [0.0, LN9]])
# Mean label 0.5, and rows 1 and 3 disagree with the student's own argmax.
BATCH_LABELS = torch.tensor([0.0, 1.0, 1.0, 0.0])


def close(a: torch.Tensor, b: float) -> bool:
    return math.isclose(a.item(), b, rel_tol=1e-5, abs_tol=1e-6)


def test_xent_uniform_logits_is_ln2_for_any_label() -> None:
    # softmax([0, 0]) = [1/2, 1/2]; target [0.7, 0.3]: -(0.7 ln 1/2 + 0.3 ln 1/2) = ln 2.
    assert close(XentLoss()(torch.zeros(1, 2), torch.tensor([0.3]), 0.0), math.log(2.0))


def test_xent_hard_label() -> None:
    # softmax([0, ln3]) = [1/4, 3/4]; target [0, 1]: -ln(3/4).
    assert close(XentLoss()(torch.tensor([[0.0, LN3]]), torch.tensor([1.0]), 0.5), -math.log(0.75))


def test_xent_is_the_batch_mean() -> None:
    # Rows as in the two tests above: (ln 2 - ln 3/4) / 2.
    loss = XentLoss()(torch.tensor([[0.0, 0.0], [0.0, LN3]]), torch.tensor([0.3, 1.0]), 0.0)
    assert close(loss, (math.log(2.0) - math.log(0.75)) / 2)


def test_logconf_at_start_of_training_is_xent() -> None:
    # coef = aux_coef * min(1, 0 / warmup_frac) = 0, so the target is the weak label alone.
    torch.manual_seed(0)
    logits, labels = torch.randn(16, 2), torch.rand(16)
    assert close(LogConfLoss()(logits, labels, 0.0), XentLoss()(logits, labels, 0.0).item())


def test_logconf_full_weight_uses_hardened_self_predictions() -> None:
    # mean label = 0.5, so threshold = quantile([0.75, 0.5, 0.25, 0.1], 0.5).
    # Sorted [0.1, 0.25, 0.5, 0.75]; position 0.5 * 3 = 1.5 -> 0.25 + 0.5 * (0.5 - 0.25) = 0.375.
    # p(false) >= 0.375 -> "false": rows 0, 1 get [1, 0]; rows 2, 3 get [0, 1].
    # coef = 1 after warm-up, so the weak labels drop out:
    #   row 0: -ln 3/4, row 1: -ln 1/2, row 2: -ln 3/4, row 3: -ln 9/10.
    loss = LogConfLoss(aux_coef=1.0, warmup_frac=0.1)(BATCH, BATCH_LABELS, 0.5)
    want = -(2 * math.log(0.75) + math.log(0.5) + math.log(0.9)) / 4
    assert close(loss, want)


def test_logconf_mixes_weak_and_hardened_targets() -> None:
    # Same hardened targets as above, weak targets [1,0], [0,1], [0,1], [1,0]; coef = 0.5:
    #   row 0: [1, 0]     -> -ln 3/4
    #   row 1: [1/2, 1/2] -> -(ln 1/2 + ln 1/2) / 2 = ln 2
    #   row 2: [0, 1]     -> -ln 3/4
    #   row 3: [1/2, 1/2] -> -(ln 1/10 + ln 9/10) / 2
    loss = LogConfLoss(aux_coef=0.5, warmup_frac=0.1)(BATCH, BATCH_LABELS, 1.0)
    row3 = -(math.log(0.1) + math.log(0.9)) / 2
    want = (-2 * math.log(0.75) + math.log(2.0) + row3) / 4
    assert close(loss, want)


def test_logconf_warmup_is_linear() -> None:
    fn = LogConfLoss(aux_coef=0.5, warmup_frac=0.2)
    assert fn.coef(0.0) == 0.0
    assert math.isclose(fn.coef(0.1), 0.25)
    assert fn.coef(0.2) == fn.coef(0.9) == 0.5
    assert LogConfLoss(aux_coef=0.5, warmup_frac=0.0).coef(0.0) == 0.5
    # The target is linear in coef, so the loss halfway through warm-up is the mean of the ends.
    start, mid, end = (fn(BATCH, BATCH_LABELS, s).item() for s in (0.0, 0.1, 0.2))
    assert math.isclose(mid, (start + end) / 2, rel_tol=1e-5)


def test_product_target_by_hand() -> None:
    # preds = softmax([0, ln3]) = [1/4, 3/4] on both rows.
    #   row 0, label 1/2: [1/4 * 1/2, 3/4 * 1/2] / (1/2) = [1/4, 3/4] -> -(1/4 ln 1/4 + 3/4 ln 3/4)
    #   row 1, label 1/4: [1/4 * 3/4, 3/4 * 1/4] / (3/8) = [1/2, 1/2] -> -(1/2 ln 1/4 + 1/2 ln 3/4)
    logits = torch.tensor([[0.0, LN3], [0.0, LN3]])
    loss = ProductLoss()(logits, torch.tensor([0.5, 0.25]), 0.3)
    row0 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    row1 = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert close(loss, (row0 + row1) / 2)


def test_product_with_alpha_and_beta() -> None:
    # preds [1/4, 3/4], label 1/4 -> weak [3/4, 1/4]; alpha = 2, beta = 1:
    #   [1/4 * 9/16, 3/4 * 1/16] = [9/64, 3/64] -> [3/4, 1/4] -> -(3/4 ln 1/4 + 1/4 ln 3/4).
    loss = ProductLoss(alpha=2.0, beta=1.0)(torch.tensor([[0.0, LN3]]), torch.tensor([0.25]), 0.0)
    assert close(loss, -(0.75 * math.log(0.25) + 0.25 * math.log(0.75)))


def test_product_with_beta_zero_is_xent() -> None:
    torch.manual_seed(1)
    logits, labels = torch.randn(8, 2), torch.rand(8)
    got = ProductLoss(beta=0.0)(logits, labels, 0.5)
    assert close(got, XentLoss()(logits, labels, 0.5).item())


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_flows(name: str) -> None:
    torch.manual_seed(2)
    logits = torch.randn(8, 2, requires_grad=True)
    labels = torch.tensor([0.9, 0.1, 1.0, 0.0, 0.8, 0.2, 0.95, 0.05])
    get_loss(name)(logits, labels, 0.5).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_product_target_is_detached() -> None:
    # With the target held constant, d(mean CE)/dz = (softmax(z) - target) / B.
    # Row: preds [1/4, 3/4], label 1/4 -> target [1/2, 1/2]; grad = [-1/4, 1/4].
    logits = torch.tensor([[0.0, LN3]], requires_grad=True)
    ProductLoss()(logits, torch.tensor([0.25]), 0.0).backward()
    assert logits.grad is not None
    assert torch.allclose(logits.grad, torch.tensor([[-0.25, 0.25]]), atol=1e-6)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_labels_outside_unit_interval_raise(name: str, bad: float) -> None:
    with pytest.raises(ValueError, match=r"labels .*\[0, 1\]"):
        get_loss(name)(torch.zeros(2, 2), torch.tensor([0.5, bad]), 0.0)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_shape_mismatch_raises(name: str) -> None:
    fn = get_loss(name)
    with pytest.raises(ValueError, match="labels must have shape"):
        fn(torch.zeros(3, 2), torch.zeros(2), 0.0)
    with pytest.raises(ValueError, match="labels must have shape"):
        fn(torch.zeros(3, 2), torch.zeros(3, 2), 0.0)
    with pytest.raises(ValueError, match="logits must have shape"):
        fn(torch.zeros(3, 3), torch.zeros(3), 0.0)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="step_frac"):
        XentLoss()(torch.zeros(1, 2), torch.zeros(1), 1.5)
    with pytest.raises(ValueError, match="aux_coef"):
        LogConfLoss(aux_coef=2.0)
    with pytest.raises(ValueError, match="warmup_frac"):
        LogConfLoss(warmup_frac=-0.1)


def test_get_loss_builds_with_kwargs() -> None:
    fn = get_loss("logconf", aux_coef=0.25, warmup_frac=0.0)
    assert isinstance(fn, LogConfLoss) and isinstance(fn, Loss)
    assert fn.coef(0.0) == 0.25
    assert "aux_coef=0.25" in repr(fn)


def test_get_loss_unknown_name_lists_allowed() -> None:
    with pytest.raises(ValueError, match="logconf") as err:
        get_loss("hinge")
    assert all(name in str(err.value) for name in ("xent", "logconf", "product", "hinge"))


def test_sample_weights_scale_each_row() -> None:
    # Rows: ln 2 and -ln(3/4); weights 1.5 and 0.5 → (1.5 ln 2 - 0.5 ln(3/4)) / 2.
    logits, labels = torch.tensor([[0.0, 0.0], [0.0, LN3]]), torch.tensor([0.3, 1.0])
    got = XentLoss()(logits, labels, 0.0, torch.tensor([1.5, 0.5]))
    assert close(got, (1.5 * math.log(2.0) - 0.5 * math.log(0.75)) / 2)
    for name in ("xent", "logconf", "product"):  # unit weights change nothing, for every loss
        loss = get_loss(name)
        assert close(loss(logits, labels, 0.5, torch.ones(2)), loss(logits, labels, 0.5).item())
    with pytest.raises(ValueError, match="weights must have shape"):
        XentLoss()(logits, labels, 0.0, torch.ones(3))


def test_product_is_finite_when_the_student_is_sure_against_a_hard_label() -> None:
    # A logit margin of 200 underflows softmax to [1, 0] in fp32; against label 1 the product
    # target was [1·0, 0·1] / 0 = nan. In log space the target is the hard label itself.
    logits = torch.tensor([[200.0, 0.0], [0.0, 150.0]], requires_grad=True)
    loss = ProductLoss()(logits, torch.tensor([1.0, 0.0]), 0.5)
    assert torch.isfinite(loss) and close(loss, (200.0 + 150.0) / 2)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    # alpha = 0 (weak labels ignored) still gives the student's own target, not nan from 0·log 0.
    assert torch.isfinite(ProductLoss(alpha=0.0)(logits.detach(), torch.tensor([1.0, 0.0]), 0.5))


# The gate: coef is scaled by the batch's least-squares slope of the student's p(true) on the weak
# labels, clipped to [0, 1] (docs/training.md, "Logconf under fine-tuning").


def logits_for(p_true: list[float]) -> torch.Tensor:
    """Logits [0, ln(p / (1 - p))], whose softmax is [1 - p, p]."""
    return torch.tensor([[0.0, math.log(p / (1 - p))] for p in p_true])


def test_label_slope_by_hand() -> None:
    y = torch.tensor([0.2, 0.8])
    # p = [0.35, 0.65]: cov = 0.15 * 0.3 = 0.045, var = 0.09 -> 0.5.
    assert math.isclose(label_slope(torch.tensor([0.35, 0.65]), y).item(), 0.5, rel_tol=1e-5)
    assert label_slope(torch.tensor([0.5, 0.5]), y).item() == 0.0  # tied predictions
    assert math.isclose(label_slope(torch.tensor([0.8, 0.2]), y).item(), -1.0, rel_tol=1e-5)
    assert label_slope(torch.tensor([0.1, 0.9]), torch.tensor([0.3, 0.3])).item() == 0.0  # constant labels
    # Weights: a row of weight 0 does not count; all weights 0 gives 0, not nan.
    p3, y3 = torch.tensor([0.35, 0.65, 0.0]), torch.tensor([0.2, 0.8, 1.0])
    assert math.isclose(label_slope(p3, y3, torch.tensor([1.0, 1.0, 0.0])).item(), 0.5, rel_tol=1e-5)
    assert label_slope(p3, y3, torch.zeros(3)).item() == 0.0


def test_logconf_with_tied_predictions_is_xent() -> None:
    # A zero-initialised head: every p is exactly 1/2. The reference hardens every row to "false"
    # (p_0 >= quantile(p_0, mean y) holds for all), a target no ranking supports; the gate is 0.
    torch.manual_seed(3)
    logits, labels = torch.zeros(16, 2), torch.rand(16)
    xent = XentLoss()(logits, labels, 1.0).item()
    assert close(GatedLogConfLoss()(logits, labels, 1.0), xent)
    reference = LogConfLoss()(logits, labels, 1.0).item()
    # -ln 1/2 per row whatever the target: what differs is the gradient, all towards "false".
    assert math.isclose(reference, xent, rel_tol=1e-5)
    tied = logits.clone().requires_grad_(True)
    LogConfLoss()(tied, labels, 1.0).backward()
    assert tied.grad is not None and (tied.grad[:, 1] > 0).all()  # every row pushed to "false"


def test_logconf_ignores_a_ranking_against_the_labels() -> None:
    # The student ranks the rows opposite to the weak labels (slope < 0): no hardening.
    logits, labels = logits_for([0.6, 0.55, 0.45, 0.4]), torch.tensor([0.3, 0.4, 0.6, 0.7])
    assert close(GatedLogConfLoss()(logits, labels, 1.0), XentLoss()(logits, labels, 1.0).item())
    assert not close(LogConfLoss()(logits, labels, 1.0), XentLoss()(logits, labels, 1.0).item())


def test_logconf_gate_scales_the_weight_by_the_slope() -> None:
    # p = [0.35, 0.65], y = [0.2, 0.8]: slope 0.5, so coef = 0.5 * 0.5 = 0.25 after warm-up.
    # mean y = 0.5; p_0 = [0.65, 0.35], threshold = 0.5: row 0 hardened [1, 0], row 1 [0, 1].
    #   row 0: 0.75 * [0.8, 0.2] + 0.25 * [1, 0] = [0.85, 0.15]; row 1: [0.15, 0.85].
    # Both rows: -(0.85 ln 0.65 + 0.15 ln 0.35).
    logits = logits_for([0.35, 0.65]).requires_grad_(True)
    loss = GatedLogConfLoss(aux_coef=0.5, warmup_frac=0.1)(logits, torch.tensor([0.2, 0.8]), 1.0)
    assert close(loss, -(0.85 * math.log(0.65) + 0.15 * math.log(0.35)))
    # The gate is detached: d(mean CE)/dz = (softmax(z) - target) / B with the target held fixed.
    loss.backward()
    want = torch.tensor([[0.65 - 0.85, 0.35 - 0.15], [0.35 - 0.15, 0.65 - 0.85]]) / 2
    assert logits.grad is not None and torch.allclose(logits.grad, want, atol=1e-6)


def test_logconf_is_the_reference_once_the_student_reproduces_the_labels() -> None:
    # Slope >= 1 (the student's p varies with the labels at least as much): gate 1.
    torch.manual_seed(4)
    labels = 0.3 + 0.4 * torch.rand(32)
    logits = logits_for((0.5 + 1.2 * (labels - 0.5)).tolist())
    assert label_slope(torch.softmax(logits, -1)[:, 1], labels).item() >= 1.0
    for step_frac in (0.05, 0.5):
        got = GatedLogConfLoss()(logits, labels, step_frac).item()
        assert close(LogConfLoss()(logits, labels, step_frac), got)


def _train_linear_student(loss: Loss, seed: int) -> tuple[float, float]:
    """A zero-initialised linear student on 4 features: feature 0 has 4x the spread of the others
    and says nothing about the truth, feature 1 is the truth's direction, and the weak labels are
    soft (mean |y - 1/2| ~ 0.13) along it. Adam at a small lr, as when fine-tuning. Returns the
    student's accuracy against the truth and |cos| of its weight with feature 0."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2048, 4, generator=g) * torch.tensor([4.0, 1.0, 1.0, 1.0])
    truth = x[:, 1] > 0
    labels = torch.sigmoid(0.5 * x[:, 1] + 0.5 * torch.randn(2048, generator=g))
    head = torch.nn.Linear(4, 2)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    steps = 150
    for step in range(steps):
        rows = torch.randint(0, 2048, (32,), generator=g)
        opt.zero_grad()
        loss(head(x[rows]), labels[rows], step / steps).backward()
        opt.step()
    with torch.no_grad():
        w = head.weight[1] - head.weight[0]
        accuracy = ((head(x)[:, 1] > head(x)[:, 0]) == truth).float().mean().item()
    return accuracy, (w[0].abs() / w.norm()).item()


@pytest.mark.parametrize("seed", [0, 1])
def test_logconf_does_not_lock_a_slow_student_onto_a_label_free_direction(seed: int) -> None:
    # The collapse of docs/training.md ("Logconf under fine-tuning") in miniature: when the warm-up
    # ends the student has barely learned the labels, and the reference's hardened targets split
    # each batch along the student's largest-variance feature, which it then learns instead.
    xent_acc, _ = _train_linear_student(XentLoss(), seed)
    ref_acc, ref_cos = _train_linear_student(LogConfLoss(), seed)
    acc, cos = _train_linear_student(GatedLogConfLoss(), seed)
    assert ref_acc < xent_acc - 0.2 and ref_cos > 0.3  # the reproduction still reproduces
    assert acc > xent_acc - 0.1 and cos < 0.15
