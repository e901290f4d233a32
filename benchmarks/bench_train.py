"""Training-core speed against baselines timed in the same run.

(a) step time of `w2sg.train.train` vs a bare torch loop (same model, batches, optimizer, loss).
    Goal: ours / bare <= 1.05.
(b) strong features: cached (loaded from disk) vs uncached (computed) for the same rows.
(c) what fine-tuning the strong model would cost: seconds per step of `lm_head` with LoRA and end
    to end, against a linear head on its frozen features (the default), same rows and batch.

    python benchmarks/bench_train.py           # MiniLM-L6 steps; SmolLM2 features on 256 rows
    python benchmarks/bench_train.py --quick   # tiny GPT-2 everywhere (seconds)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from _timing import interleaved_medians

from oversight.paths import resolve_model_path
from w2sg.data import label_source
from w2sg.datasets import load
from w2sg.features import cached_features
from w2sg.models import ModelConfig, build_classifier
from w2sg.train import TrainConfig, seed_everything, train


def bench_steps(cfg: ModelConfig, steps: int, batch_size: int, rounds: int) -> float:
    rows = load("sciq", "train")[: steps * batch_size]
    labels = label_source(rows, "gold")
    path = resolve_model_path(cfg.path)
    tcfg = TrainConfig(lr=5e-5, epochs=1, batch_size=batch_size, eval_every=10**9, device="cpu")

    def ours() -> float:
        seed_everything(0)
        model = build_classifier(cfg, path, train=rows)
        t0 = time.perf_counter()
        train(model, rows, labels, rows[:1], labels[:1], tcfg)  # one-row validation: ~free
        return (time.perf_counter() - t0) / steps

    def bare() -> float:
        seed_everything(0)
        model = build_classifier(cfg, path, train=rows)
        opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
        t0 = time.perf_counter()
        model.train()
        for s in range(steps):
            batch = rows[s * batch_size : (s + 1) * batch_size]
            y = torch.tensor(labels[s * batch_size : (s + 1) * batch_size])
            logits = model(**model.encode(batch))
            loss = torch.nn.functional.cross_entropy(logits, torch.stack([1 - y, y], 1))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return (time.perf_counter() - t0) / steps

    mb, mo = interleaved_medians(rounds, bare, ours)
    print(f"(a) {cfg.kind} {cfg.path}: {steps} steps of {batch_size}")
    print(f"    bare torch loop {mb * 1000:.0f} ms/step   ours {mo * 1000:.0f} ms/step")
    print(f"    ratio ours/bare step time = {mo / mb:.3f}x  (goal <= 1.05x)")
    return mo / mb


def bench_features(model: str, n: int) -> float:
    rows = load("sciq", "test")[:n]
    path = resolve_model_path(model)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        cached_features(path, rows, cache)
        uncached = time.perf_counter() - t0
        t0 = time.perf_counter()
        cached_features(path, rows, cache)
        cached = time.perf_counter() - t0
    print(f"(b) features of {model} for {n} rows: uncached {uncached:.2f}s   cached {cached * 1000:.1f} ms")
    print(f"    speed-up = {uncached / cached:.0f}x")
    return uncached / cached


def bench_finetune(model: str, steps: int, batch_size: int, max_length: int) -> None:
    rows = load("sciq", "train")[: steps * batch_size]
    y = torch.tensor([round(x) for x in label_source(rows, "gold")])
    path = resolve_model_path(model)

    def step_time(cfg: ModelConfig) -> float:
        seed_everything(0)
        m = build_classifier(cfg, path, train=rows, all_examples=rows, cache_dir=cache)
        opt = torch.optim.AdamW([q for q in m.parameters() if q.requires_grad], lr=1e-4)
        times = []
        for s in range(steps):
            t0 = time.perf_counter()
            sl = slice(s * batch_size, (s + 1) * batch_size)
            loss = torch.nn.functional.cross_entropy(m(**m.encode(rows[sl])), y[sl])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]  # median: the first steps warm up allocators

    with tempfile.TemporaryDirectory() as cache:
        head = step_time(ModelConfig(kind="features", path=model, max_length=max_length))
        lora = step_time(
            ModelConfig(kind="lm_head", path=model, max_length=max_length, lora={"r": 8, "alpha": 16})
        )
        full = step_time(ModelConfig(kind="lm_head", path=model, max_length=max_length))
    print(
        f"(c) {model}, {batch_size} rows a step (median of {steps}): feature head {head * 1000:.1f} ms, "
        f"LoRA {lora:.2f} s, end to end {full:.2f} s"
    )
    print(
        f"    ratio LoRA / feature head = {lora / head:.0f}x   end to end / feature head = {full / head:.0f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.quick:
        bench_steps(ModelConfig(kind="lm_head", path="embedded/tiny-gpt2", max_length=64), 10, 16, 1)
        bench_features("embedded/tiny-gpt2", 64)
        bench_finetune("embedded/tiny-gpt2", 3, 8, 64)
    else:
        bench_steps(ModelConfig(kind="seq_cls", path="embedded/minilm", max_length=64), 20, 32, args.rounds)
        bench_features("embedded/smollm2", 256)
        bench_finetune("embedded/smollm2", 6, 32, 128)


if __name__ == "__main__":
    main()
