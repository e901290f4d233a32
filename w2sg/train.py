"""One plain torch training loop for every classifier, accelerate-ready.

Under `accelerate launch` / `torchrun` the Accelerator spreads batches over processes; alone it
is a thin wrapper on one device. Selection: every `eval_every` steps the model is scored on the
*validation* split and the best state is kept. The test split never enters this module.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from w2sg.data import Example
from w2sg.losses import Loss, get_loss
from w2sg.progress import track

log = logging.getLogger(__name__)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(32, ge=1)
    lr: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    epochs: float = Field(2.0, gt=0, description="may be fractional")
    warmup_frac: float = Field(0.0, ge=0, lt=1, description="linear lr warm-up, as a fraction of steps")
    schedule: Literal["cosine", "constant"] = "cosine"
    eval_every: int = Field(50, ge=1, description="steps between validation scores")
    loss: Literal["xent", "logconf", "product"] = "xent"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"


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


def _loader(
    model: nn.Module, rows: Sequence[object], batch_size: int, shuffle: bool, seed: int
) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    data = list(rows)
    sampler = RandomSampler(data, generator=g) if shuffle else SequentialSampler(data)
    # encode after collation: the model knows its inputs
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


@torch.no_grad()
def predict(
    model: nn.Module, examples: Sequence[Example], batch_size: int = 64, device: str = "auto"
) -> np.ndarray:
    """p(true) per example, shape (N,)."""
    dev = resolve_device(device)
    model.to(dev).eval()
    out = []
    for batch in _loader(model, examples, batch_size, shuffle=False, seed=0):
        inputs = {k: v.to(dev) for k, v in model.encode(batch).items()}
        out.append(torch.softmax(model(**inputs).float(), -1)[:, 1].cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def _accuracy(probs: np.ndarray, labels: Sequence[float]) -> float:
    return float(np.mean((probs > 0.5) == (np.asarray(labels) > 0.5)))


def train(
    model: nn.Module,
    examples: Sequence[Example],
    labels: Sequence[float],
    val: Sequence[Example],
    val_labels: Sequence[float],
    cfg: TrainConfig,
    loss_fn: Loss | None = None,
    weights: Sequence[float] | None = None,
    stage: str | None = None,
) -> TrainResult:
    """Train on soft `labels` (p(true) per example); keep the state with the best validation
    accuracy against `val_labels` (gold, or the same weak source for label-free selection).
    `weights` (boosting) are per-example sample weights, applied in the loss. `stage` names the
    run in the progress lines (`w2sg.progress`); default `train <model class> (<n> rows)`."""
    from accelerate import Accelerator

    if len(labels) != len(examples) or len(val_labels) != len(val):
        raise ValueError(
            f"{len(examples)} examples with {len(labels)} labels; {len(val)} val with {len(val_labels)}"
        )
    if weights is None:
        w = np.ones(len(examples))
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != (len(examples),) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(examples)} finite non-negative numbers, not all 0")
        w = w * len(w) / w.sum()  # mean 1: the loss scale (and so the lr) does not depend on them
    seed_everything(cfg.seed)
    loss_fn = loss_fn or get_loss(cfg.loss)
    acc = Accelerator(cpu=resolve_device(cfg.device) == "cpu")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rows = list(zip(examples, labels, w.tolist(), strict=True))
    loader = _loader(model, rows, cfg.batch_size, shuffle=True, seed=cfg.seed)
    model, opt, loader = acc.prepare(model, opt, loader)
    # Steps are counted after prepare(): under DDP each process sees its shard of the batches.
    # The scheduler is not prepared, so it steps exactly once per optimizer step on every process.
    total = max(1, math.ceil(cfg.epochs * len(loader)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, total, cfg))
    raw = acc.unwrap_model(model)

    best: tuple[float, int, dict[str, torch.Tensor] | None] = (-1.0, 0, None)  # (val acc, step, state)
    history: list[tuple[int, float, float]] = []
    step, running = 0, 0.0
    stage = stage or f"train {type(raw).__name__} ({len(examples)} rows)"
    with track(stage, total, unit="steps", enabled=acc.is_main_process, quiet=True) as progress:
        while step < total:
            for batch in loader:
                model.train()
                inputs = {k: v.to(acc.device) for k, v in raw.encode([e for e, _, _ in batch]).items()}
                y = torch.tensor([lab for _, lab, _ in batch], dtype=torch.float32, device=acc.device)
                wb = None if weights is None else torch.tensor([x for _, _, x in batch], device=acc.device)
                loss = loss_fn(model(**inputs), y, step / total, wb)  # logits (B, 2)
                acc.backward(loss)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                running += loss.detach().item()
                step += 1
                progress.advance()
                if step % cfg.eval_every == 0 or step == total:
                    val_acc = _accuracy(predict(raw, val, device=str(acc.device)), val_labels)
                    history.append((step, running / (step - (history[-1][0] if history else 0)), val_acc))
                    running = 0.0
                    log.info("step %d/%d loss %.4f val acc %.4f", step, total, history[-1][1], val_acc)
                    if val_acc > best[0]:
                        best = (val_acc, step, copy.deepcopy(raw.state_dict()))
                if step >= total:
                    break
    if best[2] is not None:  # the last step always evaluates, so this holds unless val is empty
        raw.load_state_dict(best[2])
    return TrainResult(steps=total, best_step=best[1], best_val_accuracy=best[0], history=history)
