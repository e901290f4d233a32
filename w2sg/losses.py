"""Student losses for training on weak labels: plain cross entropy, Burns et al.'s auxiliary
confidence loss, the product-of-experts loss, and EleutherAI/w2s's `window`, `entropy` and `kl`.

Every loss has one call signature, `loss(logits, labels, step_frac, weights=None) -> scalar`:
  logits:    (B, 2) float, column 1 is the class "true";
  labels:    (B,) float soft labels, p(true) in [0, 1];
  step_frac: fraction of training done, in [0, 1];
  weights:   optional (B,) per-row sample weights (boosting), scaled by the caller so that they
             average 1 over the training set; the loss is mean_i w_i * loss_i.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor


def check_inputs(logits: Tensor, labels: Tensor, step_frac: float, weights: Tensor | None) -> None:
    """Every argument of a loss call, shapes and values. The value check reads the labels back to
    the host, a sync on an accelerator: the training loop checks all labels once instead and calls
    `Loss.forward`."""
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ValueError(f"logits must have shape (B, 2), got {tuple(logits.shape)}")
    if logits.shape[0] == 0:
        raise ValueError("logits must hold at least one row")
    if labels.shape != logits.shape[:1]:
        raise ValueError(
            f"labels must have shape ({logits.shape[0]},) to match logits, got {tuple(labels.shape)}"
        )
    # Written so that NaN labels fail too.
    if not bool(((labels >= 0) & (labels <= 1)).all()):
        raise ValueError("labels must be soft labels p(true) in [0, 1]")
    if not 0.0 <= step_frac <= 1.0:
        raise ValueError(f"step_frac must be in [0, 1], got {step_frac}")
    if weights is not None and weights.shape != logits.shape[:1]:
        raise ValueError(f"weights must have shape ({logits.shape[0]},), got {tuple(weights.shape)}")


def _soft_target(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The (B, 2) target [1 - p, p] in the logits' float dtype."""
    labels = labels.to(logits.dtype)
    return torch.stack([1 - labels, labels], dim=1)


def _ce(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Soft-target cross entropy, batch mean, optionally sample-weighted."""
    if weights is None:
        return F.cross_entropy(logits, target)
    return (weights.to(logits.dtype) * F.cross_entropy(logits, target, reduction="none")).mean()


# Below this batch variance the weak labels count as constant (fp32 rounding alone gives ~1e-14).
_MIN_LABEL_VAR = 1e-12


def label_slope(
    p_true: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Least-squares slope of the student's p(true) on the weak labels over a batch (sample-weighted
    when `weights` is given), detached: 0 for a student whose predictions are tied or unrelated to
    the labels, 1 for one that reproduces them. 0 when the labels (or the weights) do not vary.
    Device-side only: no host sync."""
    p_true, labels = p_true.detach().float(), labels.float()
    w = torch.ones_like(labels) if weights is None else weights.detach().float()
    w = w / w.sum().clamp_min(torch.finfo(w.dtype).tiny)  # all-zero weights: w = 0, var = 0
    dy = labels - (w * labels).sum()
    var = (w * dy * dy).sum()
    cov = (w * (p_true - (w * p_true).sum()) * dy).sum()
    # Labels in [0, 1] with a variance under _MIN_LABEL_VAR are constant up to fp32 rounding.
    return torch.where(var > _MIN_LABEL_VAR, cov / var.clamp_min(_MIN_LABEL_VAR), torch.zeros_like(var))


class Loss(ABC):
    """A student loss: `loss(logits, labels, step_frac, weights)` checks its arguments and returns
    the batch-mean loss of `forward`, which each loss defines (and which skips the checks)."""

    def __call__(
        self, logits: Tensor, labels: Tensor, step_frac: float, weights: Tensor | None = None
    ) -> torch.Tensor:
        check_inputs(logits, labels, step_frac, weights)
        return self.forward(logits, labels, step_frac, weights)

    @abstractmethod
    def forward(
        self, logits: Tensor, labels: Tensor, step_frac: float, weights: Tensor | None = None
    ) -> torch.Tensor: ...

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class XentLoss(Loss):
    """Soft-label cross entropy: mean_i -sum_c t_ic log softmax(z_i)_c, with t_i = [1 - y_i, y_i]."""

    def forward(
        self, logits: Tensor, labels: Tensor, step_frac: float, weights: Tensor | None = None
    ) -> torch.Tensor:
        logits = logits.float()
        target = _soft_target(logits, labels)
        return _ce(logits, target, weights)


class LogConfLoss(Loss):
    """Auxiliary confidence loss (Burns et al. 2023, openai/weak-to-strong `logconf_loss_fn`):

        coef   = aux_coef * min(1, step_frac / warmup_frac) * gate
        t      = (1 - coef) * [1 - y, y] + coef * hard(p)
        loss   = mean_i -sum_c t_ic log softmax(z_i)_c

    where p = softmax(z) and hard(p) rounds the student's own predictions to one-hot, at the
    threshold that gives them the same fraction of "true" as the weak labels in the batch: row i
    is "false" iff p_i0 >= quantile(p_0, mean(y)). The warm-up here is linear up to warmup_frac;
    the reference code instead uses coef = aux_coef * step_frac before warmup_frac and jumps to
    aux_coef after it, a known quirk we do not copy.

    gate (ours: `gated=True`, registered as `logconf_gated`; the default is the reference loss,
    gate = 1) is `label_slope`, the batch's least-squares slope of the student's p(true) on the
    weak labels, clipped to [0, 1]. hard(p) is label-free: it makes one-hot targets of any ranking
    of the student's predictions, however small their differences, and its pull (|p - hard(p)| ~
    1/2 a row) outweighs that of soft weak labels (|p - y| ~ |y - 1/2|). A student that has not
    yet learned the weak labels when the warm-up ends (a zero-initialised head at a fine-tuning
    lr) is pushed to split every batch along its own high-variance directions, and locks into a
    balanced split unrelated to the labels (docs/training.md, "Logconf under fine-tuning"). The
    gate is 0 for such a student (tied or unrelated predictions), so it learns from the weak
    labels alone; it is 1 once cov(p, y) >= var(y), where the loss is the reference's; in between
    it weakens the self-term (a student fitted by least squares has a slope near the share of the
    labels' variance it explains).
    """

    def __init__(self, aux_coef: float = 0.5, warmup_frac: float = 0.1, gated: bool = False) -> None:
        # Weight of the hardened self-predictions after warm-up; outside [0, 1] the mixed target
        # would leave the simplex.
        if not 0.0 <= aux_coef <= 1.0:
            raise ValueError(f"aux_coef must be in [0, 1], got {aux_coef}")
        # Fraction of training over which that weight ramps up linearly from 0.
        if not 0.0 <= warmup_frac <= 1.0:
            raise ValueError(f"warmup_frac must be in [0, 1], got {warmup_frac}")
        self.aux_coef = aux_coef
        self.warmup_frac = warmup_frac
        # Scale the weight by the student's slope on the weak labels (see above); False = reference.
        self.gated = gated

    def coef(self, step_frac: float) -> float:
        """Weight of the hardened self-predictions at this point of training, before the gate."""
        if self.warmup_frac > 0:
            return self.aux_coef * min(1.0, step_frac / self.warmup_frac)
        return self.aux_coef

    def forward(
        self, logits: Tensor, labels: Tensor, step_frac: float, weights: Tensor | None = None
    ) -> torch.Tensor:
        logits = logits.float()
        target_weak = _soft_target(logits, labels)
        preds = torch.softmax(logits, dim=-1)
        coef: float | Tensor = self.coef(step_frac)
        if self.gated:
            coef = coef * label_slope(preds[:, 1], target_weak[:, 1], weights).clamp(0.0, 1.0)
        mean_weak = target_weak.mean(0)
        threshold = torch.quantile(preds[:, 0], mean_weak[1])
        strong_preds = torch.cat(
            [(preds[:, 0] >= threshold)[:, None], (preds[:, 0] < threshold)[:, None]], dim=1
        ).float()
        target = target_weak * (1 - coef) + strong_preds.detach() * coef
        return _ce(logits, target, weights)


class ProductLoss(Loss):
    """Product-of-experts loss: the target is the normalised product of student and weak labels,

        t_i  = p_i^beta * [1 - y_i, y_i]^alpha / sum_c (p_ic^beta * [1 - y_i, y_i]_c^alpha)
        loss = mean_i -sum_c t_ic log softmax(z_i)_c

    with p = softmax(z) and t detached, computed in log space (a softmax of beta·log p +
    alpha·log y): the product itself underflows to 0/0 when the student is confident against a
    hard label (a logit margin above ~104 in fp32). warmup_frac is accepted so that every loss
    takes the same arguments from a config, and is unused.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, warmup_frac: float = 0.1) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.alpha = alpha
        self.beta = beta
        self.warmup_frac = warmup_frac

    def forward(
        self, logits: Tensor, labels: Tensor, step_frac: float, weights: Tensor | None = None
    ) -> torch.Tensor:
        logits = logits.float()
        target_weak = _soft_target(logits, labels)
        log_p = torch.log_softmax(logits, dim=-1)
        # alpha = 0 ignores the weak labels (y^0 = 1, also for y = 0, where 0 * log 0 would be nan).
        log_y = torch.log(target_weak) * self.alpha if self.alpha else torch.zeros_like(log_p)
        target = torch.softmax(self.beta * log_p + log_y, dim=-1)
        return _ce(logits, target.detach(), weights)


class GatedLogConfLoss(LogConfLoss):
    """`logconf_gated`: the auxiliary confidence loss with the gate on (see `LogConfLoss`)."""

    def __init__(self, aux_coef: float = 0.5, warmup_frac: float = 0.1) -> None:
        super().__init__(aux_coef, warmup_frac, gated=True)


class WindowLoss(Loss):
    """Confidence-window loss (EleutherAI/w2s `confidence_window_loss`): cross entropy only on the
    rows where the student is still uncertain, max_c softmax(z)_c < 0.5 + radius; the sum over
    them is divided by the whole batch (as the reference does), so a batch the student is sure of
    gives 0 and no gradient. The reference's `radius: midweak` (the median |y - 1/2| of the
    training labels) needs the whole training set, not a batch, and is not offered here."""

    def __init__(self, radius: float = 0.15) -> None:
        if not 0.0 <= radius <= 0.5:
            raise ValueError(f"radius must be in [0, 0.5], got {radius}")
        self.radius = radius

    def forward(
        self, logits: Tensor, labels: Tensor, step_frac: float, weights: Tensor | None = None
    ) -> torch.Tensor:
        logits = logits.float()
        uncertain = (torch.softmax(logits, dim=-1).max(dim=-1).values < 0.5 + self.radius).to(logits.dtype)
        # Multiplying by the 0/1 mask (not indexing rows) keeps the shape static: no host sync.
        w = uncertain if weights is None else uncertain * weights.to(logits.dtype)
        return _ce(logits, _soft_target(logits, labels), w)


class EntropyLoss(LogConfLoss):
    """EleutherAI/w2s's `entropy` loss: `log_confidence_loss` with `harden=False`, i.e. the
    auxiliary target is the student's own soft prediction p (detached) instead of hard(p):

        t    = (1 - coef) * [1 - y, y] + coef * p
        loss = mean_i -sum_c t_ic log softmax(z_i)_c = (1 - coef) CE(y, p) + coef H(p)

    with coef as in `LogConfLoss` (warm-up over warmup_frac). As in the reference, p in the target
    is detached, so the gradient is (1 - coef) (p - y), that of xent scaled down: the H(p) term
    shows in the loss value only."""

    def __init__(self, aux_coef: float = 0.5, warmup_frac: float = 0.1) -> None:
        super().__init__(aux_coef, warmup_frac)

    def forward(
        self, logits: Tensor, labels: Tensor, step_frac: float, weights: Tensor | None = None
    ) -> torch.Tensor:
        logits = logits.float()
        coef = self.coef(step_frac)
        preds = torch.softmax(logits, dim=-1).detach()
        target = _soft_target(logits, labels) * (1 - coef) + preds * coef
        return _ce(logits, target, weights)


class KLLoss(Loss):
    """KL divergence from the soft labels to the student (EleutherAI/w2s `kl_divergence_loss`,
    `F.kl_div(log_softmax(z), t, reduction="batchmean")`): mean_i sum_c t_ic (log t_ic - log
    softmax(z_i)_c) = xent - H(t). Its gradient is xent's; it is 0 where the student matches the
    labels, so its value reads as the distance still to go."""

    def forward(
        self, logits: Tensor, labels: Tensor, step_frac: float, weights: Tensor | None = None
    ) -> torch.Tensor:
        logits = logits.float()
        target = _soft_target(logits, labels)
        # xlogy: 0 log 0 = 0 for hard labels
        per_row = (torch.special.xlogy(target, target) - target * torch.log_softmax(logits, -1)).sum(-1)
        return per_row.mean() if weights is None else (weights.to(logits.dtype) * per_row).mean()


LossName = Literal["xent", "logconf", "logconf_gated", "product", "window", "entropy", "kl"]
LOSSES: dict[str, type[Loss]] = {
    "xent": XentLoss,
    "logconf": LogConfLoss,  # Burns et al.'s, as the field compares against
    "logconf_gated": GatedLogConfLoss,
    "product": ProductLoss,
    # EleutherAI/w2s (w2s/loss.py), for comparison against the field's methods (docs/methods.md)
    "window": WindowLoss,
    "entropy": EntropyLoss,
    "kl": KLLoss,
}


def get_loss(name: str, **kwargs: Any) -> Loss:
    """Build the loss registered under `name` with its keyword arguments."""
    if name not in LOSSES:
        raise ValueError(f"loss name must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name](**kwargs)
