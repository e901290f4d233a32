"""One plain torch training loop for every classifier, accelerate-ready.

Under `accelerate launch` / `torchrun` the Accelerator spreads batches over processes; alone it
is a thin wrapper on one device. Selection: every `eval_every` steps the model is scored on the
*validation* split and the best state is kept. The test split never enters this module.

The step loop is lean: rows are tokenized once before training (each batch is only padded), the
loss stays on the device until an evaluation reads it (no host sync per step), the best state is
copied to host memory, and `precision` runs forward passes under bf16 / fp16 autocast with the
loss in fp32 (`w2sg.losses` casts logits to float).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from w2sg.config import Config
from w2sg.data import Example
from w2sg.losses import Loss, LossName, get_loss
from w2sg.models import Classifier, Inputs
from w2sg.progress import track
from w2sg.tracking import NullTracker, Tracker

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]


class TrainConfig(Config):
    batch_size: int = Field(32, ge=1, description="rows per optimizer step (per process under DDP)")
    lr: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    epochs: float = Field(2.0, gt=0, description="may be fractional")
    warmup_frac: float = Field(0.0, ge=0, lt=1, description="linear lr warm-up, as a fraction of steps")
    schedule: Literal["cosine", "constant"] = "cosine"
    eval_every: int = Field(50, ge=1, description="steps between validation scores")
    loss: LossName = "xent"
    loss_args: dict[LossName, dict[str, float]] = Field(
        default_factory=dict,
        description="keyword arguments of each loss, e.g. {logconf: {aux_coef: 0.75, warmup_frac: 0.2}} "
        "(Burns et al.'s setting for their largest students; the defaults are 0.5 and 0.1)",
    )
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Precision = Field(
        "auto",
        description="forward passes under autocast: auto = bf16 on a GPU that supports it, else fp32; "
        "fp16 adds loss scaling. Weights, optimizer state and the loss stay fp32",
    )
    grad_accum: int = Field(
        1,
        ge=1,
        description="split each batch into this many micro-batches whose gradients add up: the same "
        "step as one batch in 1/grad_accum of the activation memory (logconf hardens per micro-batch)",
    )

    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: less memory, ~1/3 more compute"
    )
    eval_batch_size: int | None = Field(
        None, ge=1, description="rows per validation / prediction batch; None: 64 on CPU, 256 on a GPU"
    )

    @field_validator("loss_args")
    @classmethod
    def _build_losses(cls, args: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for name, kwargs in args.items():  # a wrong argument is named now, not after training starts
            try:
                get_loss(name, **kwargs)
            except TypeError as e:
                raise ValueError(f"{name}: {e}") from None
        return args

    #: left out of run ids at these values (`w2sg.identity`): each reproduces the runs made before
    #: the field existed (on CPU, `auto` is fp32), so those run folders keep their names.
    ID_NEUTRAL: ClassVar[dict[str, Any]] = {
        "precision": "auto",
        "loss_args": {},
        "grad_accum": 1,
        "gradient_checkpointing": False,
        "eval_batch_size": None,
    }


class TrainResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    steps: int
    best_step: int
    best_val_accuracy: float
    history: list[tuple[int, float, float]] = Field(description="(step, train loss, val accuracy)")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def resolve_precision(precision: str, device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision` on `device`, or None for plain fp32."""
    on_gpu = torch.device(device).type == "cuda"
    if precision == "auto":
        return torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: str | torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    """Forward passes in `dtype` where autocast deems it safe (matmuls), fp32 elsewhere."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


class _Batches(BatchSampler):
    """Batches of a sampler, with a last batch of one row merged into the batch before it: the
    logconf loss hardens a batch's predictions at the quantile that matches its weak labels' share
    of true, which for one row always hardens it to false. Merging (not dropping) keeps every row
    in every epoch; the order of all other batches is unchanged."""

    def __iter__(self) -> Iterator[list[int]]:
        # A generator, so the shuffle happens on the first batch as in BatchSampler (the loader
        # draws its base seed from the same torch.Generator before that).
        batches = list(super().__iter__())
        if len(batches) > 1 and len(batches[-1]) == 1:
            last = batches.pop()
            batches[-1] = [*batches[-1], *last]
        yield from batches

    def __len__(self) -> int:
        n = super().__len__()
        return n - 1 if n > 1 and len(self.sampler) % self.batch_size == 1 else n  # type: ignore[arg-type]


def _loader(n: int, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """Batches of row indices 0..n-1 (the rows themselves are tokenized once, outside)."""
    g = torch.Generator().manual_seed(seed)
    data = list(range(n))
    sampler = RandomSampler(data, generator=g) if shuffle else SequentialSampler(data)
    batches = _Batches(sampler, batch_size, drop_last=False)
    # The loader draws its base seed from `g` before the sampler shuffles, as with shuffle=True.
    return DataLoader(data, batch_sampler=batches, generator=g, collate_fn=lambda b: b)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Multiplier of the base lr: linear warm-up, then cosine to 0 (or constant)."""
    warm = int(cfg.warmup_frac * total)
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Host tensors to `device`. To a GPU through pinned memory without blocking: a copy from
    pageable memory would wait for every queued kernel, a host sync per step."""
    if device.type != "cuda":
        return batch
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


def eval_batch_size(cfg_size: int | None, device: torch.device) -> int:
    return cfg_size or (256 if device.type == "cuda" else 64)


@torch.no_grad()
def _predict_items(
    model: Classifier,
    items: Sequence[Inputs],
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None,
) -> np.ndarray:
    """p(true) per tokenized row, shape (N,). Rows are batched shortest first (less padding), and
    the probabilities come back to the host once, at the end."""
    model.to(device).eval()
    order = sorted(range(len(items)), key=lambda i: next(iter(items[i].values())).shape[0])
    out = []
    for s in range(0, len(order), batch_size):
        inputs = _to(model.collate([items[i] for i in order[s : s + batch_size]]), device)
        with autocast(device, dtype):
            logits = model(**inputs)
        out.append(torch.softmax(logits.float(), -1)[:, 1])
    probs = np.zeros(len(items))
    if out:
        probs[order] = torch.cat(out).cpu().numpy()
    return probs


def predict(
    model: Classifier,
    examples: Sequence[Example],
    batch_size: int | None = None,
    device: str = "auto",
    precision: Precision = "auto",
) -> np.ndarray:
    """p(true) per example, shape (N,)."""
    dev = torch.device(resolve_device(device))
    size = eval_batch_size(batch_size, dev)
    return _predict_items(model, model.tokenize(examples), size, dev, resolve_precision(precision, dev))


def _accuracy(probs: np.ndarray, labels: Sequence[float]) -> float:
    return float(np.mean((probs > 0.5) == (np.asarray(labels) > 0.5)))


def _targets(
    n: int, labels: Sequence[float], weights: Sequence[float] | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The labels and (mean-1) sample weights as host tensors, checked once here so that the step
    loop need not read them back."""
    y = torch.tensor(np.asarray(labels, dtype=float), dtype=torch.float32)
    if y.shape != (n,) or not bool(((y >= 0) & (y <= 1)).all()):
        raise ValueError(f"labels must be {n} soft labels p(true) in [0, 1]")
    if weights is None:
        return y, None
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {n} finite non-negative numbers, not all 0")
    # mean 1: the loss scale (and so the lr) does not depend on them
    return y, torch.tensor(w * len(w) / w.sum(), dtype=torch.float32)


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Host copies of what training changes (trainable parameters and buffers): a frozen backbone
    is not copied, and nothing stays on the accelerator."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad] + list(model.named_buffers())
    return {n: t.detach().to("cpu", copy=True) for n, t in named}


@torch.no_grad()
def _restore(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if name in state:
            t.copy_(state[name])


def _micro_batches(idx: list[int], k: int) -> list[list[int]]:
    """`idx` in at most `k` near-equal consecutive parts (fewer when the batch has fewer rows)."""
    return [part.tolist() for part in np.array_split(np.asarray(idx), min(k, len(idx)))]


class _Loop:
    """The state of one training run and its two actions, `step` and `evaluate`."""

    def __init__(
        self,
        model: Classifier,
        items: list[Inputs],
        y: torch.Tensor,
        w: torch.Tensor | None,
        cfg: TrainConfig,
    ):
        from accelerate import Accelerator

        self.cfg, self.raw, self.items, self.y, self.w = cfg, model, items, y, w
        self.acc = Accelerator(cpu=resolve_device(cfg.device) == "cpu")
        dev = self.acc.device
        self.dtype = resolve_precision(cfg.precision, dev)
        if dev.type == "cuda":  # TF32 for the matmuls autocast leaves in fp32 (and for fp32 runs)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if cfg.gradient_checkpointing:
            model.enable_checkpointing()
        loader = _loader(len(items), cfg.batch_size, shuffle=True, seed=cfg.seed)
        # Model and loader are prepared (placed on the device; DDP or FSDP and sharded batches under
        # `accelerate launch`), then the optimizer is built on the prepared parameters, as FSDP needs.
        self.model, self.loader = self.acc.prepare(model, loader)
        params = [p for p in self.model.parameters() if p.requires_grad]
        # fused on a GPU: one kernel updates every parameter instead of several kernels per tensor
        self.opt = torch.optim.AdamW(
            params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=dev.type == "cuda"
        )
        # Steps are counted after prepare(): under DDP each process sees its shard of the batches.
        self.total = max(1, math.ceil(cfg.epochs * len(self.loader)))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_at(s, self.total, cfg))
        # fp16 needs loss scaling (its gradients underflow); bf16 has fp32's range and does not.
        self.scaler = torch.amp.GradScaler(dev.type, enabled=self.dtype == torch.float16)

    def step(self, idx: list[int], loss_fn: Loss, frac: float) -> torch.Tensor:
        """One optimizer step over the rows `idx`, in `grad_accum` micro-batches whose losses are
        weighted by their share of rows, so the gradient is the whole batch's. Returns the batch
        loss, detached and left on the device (reading it would sync the host)."""
        parts = _micro_batches(idx, self.cfg.grad_accum)
        total = torch.zeros((), device=self.acc.device)
        for i, part in enumerate(parts):
            host = self.raw.collate([self.items[j] for j in part])
            host["_y"] = self.y[part]
            if self.w is not None:
                host["_w"] = self.w[part]
            batch = _to(host, self.acc.device)
            y, w = batch.pop("_y"), batch.pop("_w", None)
            # Gradients are all-reduced once, after the last micro-batch.
            sync = nullcontext() if i == len(parts) - 1 else self.acc.no_sync(self.model)
            with sync:
                with autocast(self.acc.device, self.dtype):
                    logits = self.model(**batch)  # (B, 2)
                # forward: the labels were checked once, before training (a check here reads them back)
                loss = loss_fn.forward(logits, y, frac, w) * (len(part) / len(idx))
                self.acc.backward(self.scaler.scale(loss))
            total += loss.detach()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return total

    def evaluate(self, items: list[Inputs], labels: Sequence[float]) -> float:
        size = eval_batch_size(self.cfg.eval_batch_size, self.acc.device)
        acc = _accuracy(_predict_items(self.raw, items, size, self.acc.device, self.dtype), labels)
        self.model.train()
        return acc


class _Curves:
    """A tracker's per-step loss and lr, buffered on the device between evaluations and read
    back at each evaluation in one transfer (the loop reads the loss there anyway)."""

    def __init__(self, tracker: Tracker | None, name: str):
        self.tracker, self.name = tracker or NullTracker(), name
        self.on = not isinstance(self.tracker, NullTracker)
        self.losses: list[torch.Tensor] = []
        self.lrs: list[float] = []

    def step(self, loss: torch.Tensor, lr: float) -> None:
        if self.on:
            self.losses.append(loss)
            self.lrs.append(lr)

    def evaluation(self, last: int, step: int, val_acc: float) -> None:
        if not self.on:
            return
        losses = torch.stack(self.losses).tolist() if self.losses else []
        for i, (loss, lr) in enumerate(zip(losses, self.lrs, strict=True)):
            self.tracker.log(self.name, last + i + 1, {"loss": loss, "lr": lr})
        self.tracker.log(self.name, step, {"val_accuracy": val_acc})
        self.losses, self.lrs = [], []


def train(
    model: Classifier,
    examples: Sequence[Example],
    labels: Sequence[float],
    val: Sequence[Example],
    val_labels: Sequence[float],
    cfg: TrainConfig,
    loss_fn: Loss | None = None,
    weights: Sequence[float] | None = None,
    stage: str | None = None,
    tracker: Tracker | None = None,
    name: str | None = None,
) -> TrainResult:
    """Train on soft `labels` (p(true) per example); keep the state with the best validation
    accuracy against `val_labels` (gold, or the same weak source for label-free selection).
    `weights` (boosting) are per-example sample weights, applied in the loss. `stage` names the
    run in the progress lines (`w2sg.progress`); default `train <model class> (<n> rows)`.
    `tracker` (`w2sg.tracking`) gets every step's loss and lr and every evaluation's val accuracy,
    under `name` (default: `stage`)."""
    if len(labels) != len(examples) or len(val_labels) != len(val):
        raise ValueError(
            f"{len(examples)} examples with {len(labels)} labels; {len(val)} val with {len(val_labels)}"
        )
    y, w = _targets(len(examples), labels, weights)
    seed_everything(cfg.seed)
    loss_fn = loss_fn or get_loss(cfg.loss, **cfg.loss_args.get(cfg.loss, {}))
    # Tokenized once: the step loop only pads batches of them.
    run = _Loop(model, model.tokenize(examples), y, w, cfg)
    val_items = model.tokenize(val)
    best: tuple[float, int, dict[str, torch.Tensor] | None] = (-1.0, 0, None)  # (val acc, step, state)
    history: list[tuple[int, float, float]] = []
    step, last, running = 0, 0, torch.zeros((), device=run.acc.device)
    stage = stage or f"train {type(model).__name__} ({len(examples)} rows)"
    curves = _Curves(tracker if run.acc.is_main_process else None, name or stage)
    run.model.train()
    with track(stage, run.total, unit="steps", enabled=run.acc.is_main_process, quiet=True) as progress:
        while step < run.total:
            for idx in run.loader:
                lr = run.sched.get_last_lr()[0]  # the lr this step uses (a host float: no sync)
                loss = run.step(idx, loss_fn, step / run.total)
                running += loss
                curves.step(loss, lr)
                step += 1
                progress.advance()
                if step % cfg.eval_every == 0 or step == run.total:
                    val_acc = run.evaluate(val_items, val_labels)
                    history.append((step, running.item() / (step - last), val_acc))  # the one host read
                    curves.evaluation(last, step, val_acc)
                    step_loss, last, running = history[-1][1], step, torch.zeros_like(running)
                    log.info("step %d/%d loss %.4f val acc %.4f", step, run.total, step_loss, val_acc)
                    if val_acc > best[0]:
                        best = (val_acc, step, _snapshot(model))
                if step >= run.total:
                    break
    if best[2] is not None:  # the last step always evaluates, so this holds unless val is empty
        _restore(model, best[2])
    return TrainResult(steps=run.total, best_step=best[1], best_val_accuracy=best[0], history=history)
