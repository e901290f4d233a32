"""Debate throughput: N questions debated concurrently vs one after another, same model, same run.

Each question is a one-round simultaneous debate (two debater turns, then a prompted Yes/No judge)
on SciQ test rows, debaters shown the support passage. Concurrent debates let the hf backend batch
the turns of different questions together. Printed: questions/s both ways and the ratio
(goal: ≥ 3× per-question throughput). The one-after-another rate is measured on a few questions.

    python benchmarks/bench_debate.py           # SmolLM2-135M, 32 concurrent, 4 sequential, 32 tokens
    python benchmarks/bench_debate.py --quick   # tiny GPT-2, 8 concurrent, 2 sequential (seconds)
    python benchmarks/bench_debate.py --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import HFOptions, ModelSpec, get_model
from graphs.debate import DebateConfig, build_debate_graph, run_debate
from w2sg.datasets import load


async def bench(
    model_name: str, n_concurrent: int, n_sequential: int, max_tokens: int, batch_size: int, device: str
) -> None:
    rows = [e for e in load("sciq", "test") if e.support][: n_concurrent + n_sequential]
    # One model serves debaters and judge: batches mix their calls.
    spec = ModelSpec(
        name=model_name, hf=HFOptions(device=device, max_batch_size=batch_size, batch_wait_ms=20)
    )
    model = get_model(spec, max_concurrency=4 * n_concurrent)
    cfg = DebateConfig(protocol="simultaneous", rounds=1, max_tokens=max_tokens, word_limit=max_tokens)
    graph = build_debate_graph(cfg, debater=model, judge=model)

    async def one(i: int) -> None:
        e = rows[i]
        await run_debate(graph, e.question, e.answer, e.support or "")

    await one(0)  # warm-up: weights, allocator
    t0 = time.perf_counter()
    for i in range(n_concurrent, n_concurrent + n_sequential):
        await one(i)
    seq = n_sequential / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n_concurrent)))
    conc = n_concurrent / (time.perf_counter() - t0)
    await model.aclose()
    print(
        f"{model_name} on {device}: one-round simultaneous debates, {max_tokens} tokens per turn, "
        f"batches <= {batch_size}"
    )
    print(f"one after another ({n_sequential} questions): {seq:.3f} questions/s")
    print(f"concurrent ({n_concurrent} questions):        {conc:.3f} questions/s")
    print(f"ratio concurrent/sequential = {conc / seq:.2f}x (goal >= 3x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny GPT-2, small sizes")
    ap.add_argument("--batch-size", type=int, default=64, help="hf max_batch_size")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the model runs")
    ap.add_argument("--tokens", type=int, default=32, help="tokens per debater turn")
    args = ap.parse_args()
    if args.quick:
        asyncio.run(bench("embedded/tiny-gpt2", 8, 2, 8, args.batch_size, args.device))
    else:
        asyncio.run(bench("embedded/smollm2", 32, 4, args.tokens, args.batch_size, args.device))


if __name__ == "__main__":
    main()
