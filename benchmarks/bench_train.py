"""Training-core speed against baselines timed in the same run.

(a) `w2sg.train.train` against a bare torch loop at the same precision and batches (same model,
    rows tokenized once, optimizer, loss), in fp32 and bf16. Goal: ours / bare <= 1.05.
(b) strong features: cached (loaded from disk) vs uncached (computed) for the same rows; and the
    cost of a warm cache as rows grow (20,000 rows of SmolLM2's 576 features, random, no model).
(c) the strong model's step through our loop: a linear head on frozen features (the CPU default),
    LoRA and full fine-tuning, each in fp32 and bf16. Goal: LoRA cheaper per step than full.

Throughput is printed as tokens/s (padded tokens: what the matmuls process) and model FLOPs
utilisation (MFU): model FLOPs per step over seconds, against the peak matmul throughput measured
on this device in the same run (or `--peak-tflops`, e.g. a GPU's datasheet figure). Model FLOPs per
token: 6 N for full fine-tuning, 4 N when the backbone is frozen or LoRA-adapted (no weight
gradients), N = non-embedding parameters; attention's own FLOPs are left out (rows are short).

    python benchmarks/bench_train.py                  # CPU: MiniLM steps; SmolLM2 features and steps
    python benchmarks/bench_train.py --quick          # tiny GPT-2 everywhere (seconds)
    python benchmarks/bench_train.py --device cuda --steps 50 --peak-tflops 989   # an H100/H200, bf16
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

from agents.names import resolve_model_path
from w2sg.data import Example, label_source, make_example
from w2sg.datasets import load
from w2sg.features import CHUNK_ROWS, LayerCache, cached_features, layer_dir, lm_text, text_key
from w2sg.models import Classifier, ModelConfig, build_classifier
from w2sg.train import TrainConfig, autocast, resolve_precision, seed_everything, train


def peak_tflops(device: str, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Best matmul throughput seen on `device` in `dtype`: the denominator of MFU."""
    n = 2048 if device == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        (a @ b).sum().item()
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e12)
    return best


def non_embedding_params(model: Classifier) -> int:
    emb = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if id(p) not in emb)


def padded_tokens(model: Classifier, rows: list[Example], batch_size: int) -> int:
    """Tokens the matmuls process for `rows` in batches of `batch_size` (padding included)."""
    items = model.tokenize(rows)
    return sum(
        model.collate(items[s : s + batch_size])["input_ids"].numel()
        for s in range(0, len(items), batch_size)
    )


def bench_ours_vs_bare(
    cfg: ModelConfig, precision: str, steps: int, batch_size: int, device: str, rounds: int
) -> None:
    rows = load("sciq", "train")[: steps * batch_size]
    labels = label_source(rows, "gold")
    path = resolve_model_path(cfg.path)
    tcfg = TrainConfig(
        lr=5e-5, epochs=1, batch_size=batch_size, eval_every=10**9, device=device, precision=precision
    )
    dtype = resolve_precision(precision, device)

    def ours() -> float:
        seed_everything(0)
        model = build_classifier(cfg, path, train=rows)
        t0 = time.perf_counter()
        train(model, rows, labels, rows[:1], labels[:1], tcfg)  # one-row validation: ~free
        return (time.perf_counter() - t0) / steps

    def bare() -> float:
        seed_everything(0)
        model = build_classifier(cfg, path, train=rows).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=device == "cuda")
        t0 = time.perf_counter()
        items, y = model.tokenize(rows), torch.tensor(labels, device=device)
        model.train()
        for s in range(steps):
            sl = slice(s * batch_size, (s + 1) * batch_size)
            batch = {k: v.to(device) for k, v in model.collate(items[sl]).items()}
            with autocast(device, dtype):
                logits = model(**batch)
            target = torch.stack([1 - y[sl], y[sl]], 1)
            torch.nn.functional.cross_entropy(logits.float(), target).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        torch.tensor(0.0, device=device).item()  # wait for the device, as ours does at its end
        return (time.perf_counter() - t0) / steps

    mb, mo = interleaved_medians(rounds, bare, ours)
    model = build_classifier(cfg, path, train=rows)
    tokens = padded_tokens(model, rows, batch_size) / steps
    print(
        f"(a) {cfg.kind} {cfg.path} {precision}: {steps} steps of {batch_size} rows, "
        f"{tokens:.0f} tokens a step"
    )
    print(
        f"    bare torch loop {mb * 1000:.0f} ms/step   ours {mo * 1000:.0f} ms/step   "
        f"{tokens / mo:.0f} tokens/s"
    )
    print(f"    ratio ours/bare step time = {mo / mb:.3f}x  (goal <= 1.05x)")


def bench_features(model: str, n: int, device: str) -> None:
    rows = load("sciq", "test")[:n]
    path = resolve_model_path(model)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        cached_features(path, rows, cache, device=device)
        uncached = time.perf_counter() - t0
        t0 = time.perf_counter()
        cached_features(path, rows, cache, device=device)
        cached = time.perf_counter() - t0
    print(f"(b) features of {model} for {n} rows: uncached {uncached:.2f}s   cached {cached * 1000:.1f} ms")
    print(f"    speed-up = {uncached / cached:.0f}x")


def bench_cache_load(n: int, width: int = 576) -> None:
    """Best of 3 reads of `n` cached rows, written in chunks as a run writes them: a warm cache's
    cost, which grows with the rows (each text hashed, each row gathered from its chunk)."""
    rows = [make_example(f"question {i} about something?", f"answer {i}", i % 2) for i in range(n)]
    model = "bench/cache-load"  # not a directory: fingerprinted by its name, never loaded
    with tempfile.TemporaryDirectory() as cache:
        keys = [text_key(lm_text(e)) for e in rows]
        layer = LayerCache(layer_dir(cache, model, "last", 128, -1), ())
        for s in range(0, n, CHUNK_ROWS):
            layer.write(keys[s : s + CHUNK_ROWS], torch.randn(len(keys[s : s + CHUNK_ROWS]), width))
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            cached_features(model, rows, cache)
            best = min(best, time.perf_counter() - t0)
    print(f"    cached load of {n} rows x {width} features: {best * 1000:.0f} ms")


def bench_strong_step(
    model: str, steps: int, batch_size: int, max_length: int, device: str, peaks: dict[str, float]
) -> None:
    """Seconds per step of our loop (`steps` steps, setup and one eval included) for each way to
    train the strong model, in fp32 and bf16."""
    rows = load("sciq", "train")[: steps * batch_size]
    labels = label_source(rows, "gold")
    path = resolve_model_path(model)
    ways = {
        "feature head": {"kind": "features"},
        "LoRA r=8": {"kind": "lm_head", "lora": {"r": 8, "alpha": 16}},
        "full fine-tune": {"kind": "lm_head"},
    }
    per_step: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as cache:
        for precision in ("fp32", "bf16"):
            tcfg = TrainConfig(
                lr=1e-4, epochs=1, batch_size=batch_size, eval_every=10**9, device=device, precision=precision
            )
            for way, spec in ways.items():
                cfg = ModelConfig.model_validate({"path": model, "max_length": max_length, **spec})
                seed_everything(0)
                m = build_classifier(cfg, path, train=rows, all_examples=rows, cache_dir=cache, device=device)
                t0 = time.perf_counter()
                train(m, rows, labels, rows[:1], labels[:1], tcfg)
                per_step[(way, precision)] = s = (time.perf_counter() - t0) / steps
                line = f"    {way:15s} {precision}: {s * 1000:8.1f} ms/step"
                if cfg.kind == "lm_head":
                    tokens = padded_tokens(m, rows, batch_size) / steps
                    flops = (6 if cfg.lora is None else 4) * non_embedding_params(m) * tokens
                    line += f"   {tokens / s:7.0f} tokens/s   MFU {flops / s / 1e12 / peaks[precision]:.1%}"
                print(line, flush=True)
    print(
        f"(c) {model}, {batch_size} rows a step, max_length {max_length} "
        f"(per step: {steps} steps, setup included)"
    )
    for precision in ("fp32", "bf16"):
        lora, full = per_step[("LoRA r=8", precision)], per_step[("full fine-tune", precision)]
        print(f"    {precision}: ratio LoRA / full fine-tune = {lora / full:.2f}x  (goal < 1)")
    for way in ways:
        print(
            f"    {way}: ratio bf16 / fp32 step time = "
            f"{per_step[(way, 'bf16')] / per_step[(way, 'fp32')]:.2f}x"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny GPT-2 everywhere")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=None, help="steps per measurement (default 20; quick 6)")
    ap.add_argument(
        "--peak-tflops", type=float, default=None, help="MFU denominator for bf16 (default: measured)"
    )
    args = ap.parse_args()
    peaks = {
        "fp32": peak_tflops(args.device, torch.float32),
        "bf16": peak_tflops(args.device, torch.bfloat16),
    }
    if args.peak_tflops:
        peaks["bf16"] = args.peak_tflops
    print(f"peak matmul on {args.device}: fp32 {peaks['fp32']:.2f} TFLOP/s, bf16 {peaks['bf16']:.2f} TFLOP/s")
    if args.quick:
        steps = args.steps or 6
        tiny = ModelConfig(kind="lm_head", path="embedded/tiny-gpt2", max_length=64)
        for precision in ("fp32", "bf16"):
            bench_ours_vs_bare(tiny, precision, steps, 16, args.device, 1)
        bench_features("embedded/tiny-gpt2", 64, args.device)
        bench_cache_load(2_000)
        bench_strong_step("embedded/tiny-gpt2", steps, 8, 64, args.device, peaks)
        return
    steps = args.steps or 20
    minilm = ModelConfig(kind="seq_cls", path="embedded/minilm", max_length=64)
    for precision in ("fp32", "bf16"):
        bench_ours_vs_bare(minilm, precision, steps, 32, args.device, args.rounds)
    bench_features("embedded/smollm2", 256, args.device)
    bench_cache_load(20_000)
    bench_strong_step("embedded/smollm2", max(4, steps // 3), 32, 128, args.device, peaks)


if __name__ == "__main__":
    main()
