"""Logconf under fine-tuning: a CPU reproduction of the collapse seen on the GPU, its mechanism,
and the gate that fixes it (docs/training.md, "Logconf under fine-tuning").

On an H200 (issue 26) a SmolLM2-135M student fine-tuned end to end (zero-initialised head, lr
2e-5, 2 epochs, batch 32) reached 0.691 with xent but 0.563 with logconf. Here the student is a
linear head, zero-initialised like `lm_head`'s, on the frozen SmolLM2 layer 18 + 22 features of
configs/w2sg-sciq.yaml, taught by that config's weak teacher (MiniLM features + a linear head),
trained by `w2sg.train.train` at the GPU run's settings: lr 2e-5, 2 epochs, batch 32, lr warm-up
0.05, weight decay 0.01, a validation score every 25 steps, selection on the weak labels of val.

Why a head on frozen features stands for fine-tuning here: the collapse is decided in the first
steps, while the zero head is small (the backbone gets no gradient through a zero head). Adam
moves each head weight by about lr a step, so the logits move by up to lr * sum_j |h_j| a step:
sum_j |h_j| is about 760 for SmolLM2's last-token state (the fine-tuned student's input) and
about 900 for the standardised features here (printed), so by the end of the loss's warm-up (25
steps) the head has learned as little here as there.

Printed, for each loss at every validation point of seed 0: coef (warm-up ramp x gate, the
batch mean since the last point), the share of each batch hardened to "true", the share of
hardened targets on the weak label's side, the spread (max - min) of the student's p(true) in a
batch, val accuracy against the weak labels (what selection reads), and dev accuracy against gold
with its share predicted "true". Then per seed and loss: the selected step, dev accuracy of the
selected state, of the last one and averaged over the second half of the validation points (a
figure that checkpoint selection does not move), and, for a linear student, the variance of its
features along its weight (over their mean variance per direction: 1 for a random direction) and
|cos| of its weight with the weak labels' direction (sum_i (y_i - mean y) x_i). The test split
is never read.

    python benchmarks/repro_logconf.py                # seeds 0 1: xent, logconf, logconf_gated
    python benchmarks/repro_logconf.py --lr 1e-3      # the frozen-feature default's lr: no collapse
    python benchmarks/repro_logconf.py --hidden 512   # an MLP head (GELU, zero-initialised output)
    python benchmarks/repro_logconf.py --aux-coef 0.75 --aux-warmup 0.2   # Burns et al.'s setting
    python benchmarks/repro_logconf.py --losses logconf-openai            # openai's warm-up jump

Cold, the features of configs/w2sg-sciq.yaml are computed first (`w2sg train` of that config
caches the same files: ~5 min on 2 free cores); cached, one student trains in about 2 s.
`logconf` is Burns et al.'s loss (`LogConfLoss()`), `logconf-openai` the same with
openai/weak-to-strong's warm-up (coef = aux_coef * step_frac, then a jump to aux_coef),
`logconf_gated` the project's gated variant (`LogConfLoss(gated=True)`). The frozen-feature
default's own students (configs/w2sg-sciq.yaml):
`--lr 1e-3 --epochs 5 --lr-warmup 0 --eval-every 50 --init default`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from agents.names import resolve_model_path
from w2sg.experiment import Fitter, W2SGConfig, prepare_splits, supervise
from w2sg.losses import LogConfLoss, Loss, XentLoss, label_slope
from w2sg.models import build_classifier
from w2sg.train import TrainConfig, predict, seed_everything, train

ROOT = Path(__file__).resolve().parents[1]


class OpenAIWarmupLogConf(LogConfLoss):
    """openai/weak-to-strong's schedule: coef = aux_coef * step_frac until warmup_frac, then
    aux_coef (a jump); no gate."""

    def coef(self, step_frac: float) -> float:
        return self.aux_coef * (1.0 if step_frac > self.warmup_frac else step_frac)


LOSSES: dict[str, Callable[[float, float], Loss]] = {
    "xent": lambda aux, warm: XentLoss(),
    "logconf": lambda aux, warm: LogConfLoss(aux, warm),
    "logconf-openai": lambda aux, warm: OpenAIWarmupLogConf(aux, warm),
    "logconf_gated": lambda aux, warm: LogConfLoss(aux, warm, gated=True),
}
DEFAULT_LOSSES = ["xent", "logconf", "logconf_gated"]


class Recorder(Loss):
    """Wraps a loss: records what the batch's hardening does at every step, and scores the student
    on dev (gold) every `every` steps."""

    def __init__(self, inner: Loss, model: nn.Module, every: int, dev: list, dev_gold: np.ndarray) -> None:
        self.inner, self.model, self.every, self.dev, self.dev_gold = inner, model, every, dev, dev_gold
        self.steps: list[dict[str, float]] = []
        self.evals: list[dict[str, float]] = []

    def forward(
        self, logits: Tensor, labels: Tensor, step_frac: float, weights: Tensor | None = None
    ) -> Tensor:
        with torch.no_grad():
            p = torch.softmax(logits.float(), -1)
            hard_true = p[:, 0] < torch.quantile(p[:, 0], labels.float().mean())
            coef = 0.0
            if isinstance(self.inner, LogConfLoss):
                coef = self.inner.coef(step_frac)
                if self.inner.gated:
                    coef *= label_slope(p[:, 1], labels, weights).clamp(0, 1).item()
            self.steps.append(
                {
                    "coef": coef,
                    "hard_true": hard_true.float().mean().item(),
                    "hard_agree": (hard_true == (labels > 0.5)).float().mean().item(),
                    "spread": (p[:, 1].max() - p[:, 1].min()).item(),
                }
            )
        loss = self.inner.forward(logits, labels, step_frac, weights)
        if len(self.steps) % self.every == 0:
            probs = predict(self.model, self.dev)
            self.evals.append(
                {
                    "dev": float(np.mean((probs > 0.5) == (self.dev_gold > 0.5))),
                    "dev_true": float(np.mean(probs > 0.5)),
                }
            )
            self.model.train()
        return loss


def head_inputs(model: nn.Module, rows: list) -> np.ndarray:
    """What the student's head reads for `rows` (its standardised features)."""
    seen: list[Tensor] = []
    first = model.head[0] if isinstance(model.head, nn.Sequential) else model.head
    hook = first.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        predict(model, rows)
    finally:
        hook.remove()
    return torch.cat(seen).numpy()


def directions(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """For a linear student: the variance of its features along its weight over their mean
    variance per direction (1 for a random direction), and |cos| of the weight with the weak
    labels' direction."""
    w = (model.head.weight[1] - model.head.weight[0]).detach().numpy()
    w = w / np.linalg.norm(w)
    xc = x - x.mean(0)
    d = xc.T @ (y - y.mean())
    return float((xc @ w).var() / xc.var(0).mean()), float(abs(w @ d) / np.linalg.norm(d))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs/w2sg-sciq.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--losses", nargs="+", default=DEFAULT_LOSSES, choices=list(LOSSES))
    ap.add_argument("--lr", type=float, default=2e-5, help="the GPU run's; the features default is 1e-3")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--hidden", type=int, default=0, help="0: a linear head; N: an MLP of width N")
    ap.add_argument("--lr-warmup", type=float, default=0.05, help="the loop's; the GPU run's 0.05")
    ap.add_argument("--eval-every", type=int, default=25, help="steps between validation scores")
    ap.add_argument(
        "--init", choices=["zero", "default"], default="zero", help="the head: zero as lm_head's, or torch's"
    )
    ap.add_argument("--aux-coef", type=float, default=0.5, help="logconf's; Burns et al.: up to 0.75")
    ap.add_argument("--aux-warmup", type=float, default=0.1, help="logconf's; Burns et al.: 0.2")
    args = ap.parse_args()

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cfg = W2SGConfig.model_validate(yaml.safe_load(Path(args.config).read_text()))
    cfg = cfg.model_copy(update={"label_sources": ["weak"]})
    os.chdir(ROOT)  # the config's cache_dir is relative to the project
    sp = prepare_splits(cfg)
    fitter = Fitter(cfg, sp, lambda p: str(resolve_model_path(p)))
    t0 = time.perf_counter()
    weak = supervise(fitter, ["weak"], targets=("strong", "val", "dev"))[0]["weak"]
    gold = fitter.gold
    accuracy = {k: float(np.mean((weak[k] > 0.5) == gold[k])) for k in ("strong", "dev")}
    print(
        f"weak teacher: dev accuracy {accuracy['dev']:.3f}; its labels on the student's "
        f"{len(sp['strong'])} rows: accuracy {accuracy['strong']:.3f}, mean |y - 1/2| "
        f"{np.mean(np.abs(weak['strong'] - 0.5)):.3f} ({time.perf_counter() - t0:.0f} s)"
    )
    tcfg = TrainConfig(
        lr=args.lr,
        epochs=args.epochs,
        batch_size=32,
        weight_decay=0.01,
        warmup_frac=args.lr_warmup,
        eval_every=args.eval_every,
        device="cpu",
    )
    linear = not args.hidden
    summary = []
    for seed in args.seeds:
        for name in args.losses:
            seed_everything(seed)
            model = build_classifier(
                cfg.strong,
                fitter.resolve(cfg.strong.path),
                train=sp["strong"],
                all_examples=fitter.seen["strong"],
                cache_dir=cfg.cache_dir,
            )
            if not linear:
                width = model.head.in_features
                model.head = nn.Sequential(
                    nn.Linear(width, args.hidden), nn.GELU(), nn.Linear(args.hidden, 2)
                )
            if args.init == "zero":
                out = model.head if linear else model.head[-1]
                nn.init.zeros_(out.weight)  # as LMHeadClassifier's head: p = 1/2 for every row at step 0
                nn.init.zeros_(out.bias)
            loss = LOSSES[name](args.aux_coef, args.aux_warmup)
            rec = Recorder(loss, model, tcfg.eval_every, sp["dev"], gold["dev"])
            t0 = time.perf_counter()
            res = train(
                model,
                sp["strong"],
                list(weak["strong"]),
                sp["val"],
                list(weak["val"]),
                tcfg.model_copy(update={"seed": seed}),
                loss_fn=rec,
            )
            secs = time.perf_counter() - t0
            selected = float(np.mean((predict(model, sp["dev"]) > 0.5) == gold["dev"]))
            row: dict = {"seed": seed, "loss": name, "best": res.best_step, "selected": selected}
            row["last"] = rec.evals[-1]["dev"]
            row["half"] = float(np.mean([e["dev"] for e in rec.evals[len(rec.evals) // 2 :]]))
            if linear:
                x = head_inputs(model, sp["strong"])
                if not summary:
                    print(f"student features: mean sum_j |x_j| = {np.abs(x).sum(1).mean():.0f}")
                row["var"], row["weak_dir"] = directions(model, x, weak["strong"])
            summary.append(row)
            if seed != args.seeds[0]:
                continue
            print(f"\n{name}, seed {seed} ({res.steps} steps, {secs:.1f} s)")
            print("  step   coef  hard_true  hard=weak  spread  val~weak  dev    dev_true")
            for (step, _, val_acc), ev in zip(res.history, rec.evals, strict=False):
                window = rec.steps[max(0, step - tcfg.eval_every) : step]
                m = {k: float(np.mean([s[k] for s in window])) for k in window[0]}
                print(
                    f"  {step:4d}  {m['coef']:.3f}  {m['hard_true']:.2f}       {m['hard_agree']:.2f}"
                    f"       {m['spread']:.3f}   {val_acc:.3f}     {ev['dev']:.3f}  {ev['dev_true']:.2f}"
                )
    head = "\nseed  loss            selected step  dev: selected  last   2nd half"
    print(head + ("  var along w  |cos weak dir|" if linear else ""))
    for r in summary:
        extra = f"  {r['var']:11.1f}  {r['weak_dir']:.3f}" if linear else ""
        print(
            f"{r['seed']:4d}  {r['loss']:14s}  {r['best']:13d}  {r['selected']:.3f}"
            f"          {r['last']:.3f}  {r['half']:.3f}{extra}"
        )
    for name in args.losses:
        rows = [r for r in summary if r["loss"] == name]
        mean = {k: np.mean([r[k] for r in rows]) for k in ("selected", "last", "half")}
        print(
            f"mean over {len(rows)} seeds, {name}: dev selected {mean['selected']:.3f}, "
            f"last {mean['last']:.3f}, 2nd half {mean['half']:.3f}"
        )


if __name__ == "__main__":
    main()
