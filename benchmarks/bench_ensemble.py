"""Ensemble cost grows linearly with the number of members.

Bagging and boosting with N = 1, 2, 4, 8 members of a frozen-feature weak model (MLP head, the
shape of configs/w2sg-ensembles.yaml) on synthetic features, timed in one run. Printed: seconds
per member at each N and the ratio t(N) / (N · t(1)); linear growth keeps the ratio near 1
(goal: ≤ 1.2 at N = 8 — no per-member cost grows with the ensemble).

    python benchmarks/bench_ensemble.py            # 2,000 rows × 384 features, 5 epochs
    python benchmarks/bench_ensemble.py --quick    # 400 rows, 2 epochs (seconds)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from w2sg.data import Example, make_example
from w2sg.ensembles import EnsembleConfig, run_ensemble
from w2sg.models import FeatureHead
from w2sg.train import TrainConfig, predict, seed_everything, train


def synthetic(n_questions: int, dim: int, seed: int) -> tuple[list[Example], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(dim, generator=g) / dim**0.5
    rows, feats = [], {}
    for i in range(n_questions):
        for label in (1, 0):
            e = make_example(f"b{seed}q{i}", f"a{label}", label)
            feats[e.id] = torch.randn(dim, generator=g) + (1.0 if label else -1.0) * direction
            rows.append(e)
    return rows, feats


def run(n_questions: int, epochs: int, sizes: Sequence[int]) -> None:
    tr, f1 = synthetic(n_questions, 384, 0)
    va, f2 = synthetic(n_questions // 8, 384, 1)
    te, f3 = synthetic(n_questions // 4, 384, 2)
    feats = {**f1, **f2, **f3}
    gold = np.array([float(e.label) for e in tr])
    va_gold = [float(e.label) for e in va]
    tcfg = TrainConfig(lr=1e-3, epochs=epochs, batch_size=32, eval_every=20, device="cpu")

    def fit(xs: Sequence[Example], labels: np.ndarray, weights: np.ndarray | None, seed: int):
        seed_everything(seed)
        model = FeatureHead(feats, [e.id for e in xs], hidden=64)
        train(model, xs, list(labels), va, va_gold, tcfg.model_copy(update={"seed": seed}), weights=weights)
        return lambda ys: predict(model, ys, device="cpu")

    targets = {"val": va, "test": te}
    fit(tr, gold, None, 0)  # warm-up: allocator, threads
    print(f"{len(tr)} training rows, 384 features, MLP head, {epochs} epochs per member")
    print(f"{'method':<9} {'N':>3} {'seconds':>8} {'s/member':>9} {'t(N)/(N·t(1))':>14}")
    for method in ("bagging", "boosting"):
        base = None
        for n in sizes:
            cfg = EnsembleConfig(method=method, n=n)
            t0 = time.perf_counter()
            res, _ = run_ensemble(tr, gold, fit, targets, cfg, val_gold=np.array(va_gold))
            secs = time.perf_counter() - t0
            base = base or secs
            # Boosting may stop early (e_t >= 0.5): normalise by the members actually trained.
            ratio = secs / (res.trained * base)
            print(f"{method:<9} {n:>3} {secs:>8.2f} {secs / res.trained:>9.3f} {ratio:>14.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
    args = ap.parse_args()
    if args.quick:
        run(200, 2, [1, 2, 4])
    else:
        run(1000, 5, [1, 2, 4, 8])


if __name__ == "__main__":
    main()
