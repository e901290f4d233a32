"""Debate throughput: N questions debated concurrently vs one after another, same model, same run.

Each question is a simultaneous debate (two debater turns a round, then a prompted Yes/No judge)
on SciQ test rows, debaters shown the support passage. Concurrent debates let the hf backend batch
the turns of different questions together; its prefix cache lets calls that start with the same
tokens (one question's two debaters, a debater's next round) skip recomputing them.
Three runs, each on its own copy of the model (so no run warms another's cache):
  one after another   prefix cache off, `--sequential` questions (the earlier trees' baseline)
  batched, cache off  batching as it was before prefix reuse
  batched, cache on   the default
and with `--attribute` a fourth: cache on but keeping nothing (grouped prefill, no reuse).
Printed: questions/s, the ratios (goals: >= 3x over one after another, >= 1.5x over batching with
the cache off), prefill and decode tokens/s, and the share of prompt tokens served from the cache.

    python benchmarks/bench_debate.py --tokens 64   # SmolLM2-135M, 32 concurrent, 4 sequential
    python benchmarks/bench_debate.py --quick       # tiny GPT-2, 8 concurrent, 2 sequential (seconds)
    python benchmarks/bench_debate.py --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import HFOptions, ModelSpec, get_model
from agents.backends.prefix_cache import PrefillStats
from graphs.debate import DebateConfig, build_debate_graph, run_debate
from w2sg.datasets import Example, load


@dataclass
class Setup:
    model: str
    concurrent: int
    sequential: int
    tokens: int
    rounds: int
    batch_size: int
    device: str
    attribute: bool = False


@dataclass
class Result:
    rate: float  # questions/s
    stats: PrefillStats


async def timed(setup: Setup, warm: Example, rows: list[Example], *, cache: int, concurrent: bool) -> Result:
    """Debate `rows` on a fresh copy of the model with `prefix_cache_tokens=cache`, after `warm`
    (weights, allocator)."""
    hf = HFOptions(
        device=setup.device, max_batch_size=setup.batch_size, batch_wait_ms=20, prefix_cache_tokens=cache
    )
    # One model serves debaters and judge: batches mix their calls.
    model = get_model(ModelSpec(name=setup.model, hf=hf), max_concurrency=4 * setup.concurrent)
    t = setup.tokens
    cfg = DebateConfig(protocol="simultaneous", rounds=setup.rounds, max_tokens=t, word_limit=t)
    graph = build_debate_graph(cfg, debater=model, judge=model)

    async def one(e: Example) -> None:
        await run_debate(graph, e.question, e.answer, e.support or "")

    await one(warm)
    backend = model.api
    before = replace(backend.stats)  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    if concurrent:
        await asyncio.gather(*(one(e) for e in rows))
    else:
        for e in rows:
            await one(e)
    rate = len(rows) / (time.perf_counter() - t0)
    after = backend.stats  # type: ignore[attr-defined]
    await model.aclose()
    delta = PrefillStats(**{k: getattr(after, k) - getattr(before, k) for k in vars(after)})
    return Result(rate, delta)


def describe(label: str, r: Result) -> str:
    s = r.stats
    prefill = s.prompt_tokens / s.prefill_s if s.prefill_s else 0.0
    computed = s.computed_tokens / s.prefill_s if s.prefill_s else 0.0
    decode = s.decode_tokens / s.decode_s if s.decode_s else 0.0
    return (
        f"{label:<22}{r.rate:7.3f} questions/s | prefill {prefill:7.0f} prompt tokens/s "
        f"({computed:.0f} computed, {s.reused_share:.0%} from the cache; {s.prefill_s:.1f} s) | "
        f"decode {decode:6.0f} tokens/s ({s.decode_s:.1f} s)"
    )


async def bench(setup: Setup) -> None:
    pool = [e for e in load("sciq", "test") if e.support]
    n = setup.concurrent
    # The earlier trees' rows: the first n concurrently, the next ones in sequence; the warm-up
    # question is outside the concurrent ones, so it gives the cache-on run no head start.
    conc_rows, seq_rows, warm = pool[:n], pool[n : n + setup.sequential], pool[n + setup.sequential]
    seq = await timed(setup, warm, seq_rows, cache=0, concurrent=False)
    off = await timed(setup, warm, conc_rows, cache=0, concurrent=True)
    on = await timed(setup, warm, conc_rows, cache=HFOptions().prefix_cache_tokens, concurrent=True)
    # Cache on but too small to keep any prompt: the reuse path's grouping and logits, no reuse.
    bare = await timed(setup, warm, conc_rows, cache=1, concurrent=True) if setup.attribute else None
    print(
        f"{setup.model} on {setup.device}: {setup.rounds}-round simultaneous debates, {setup.tokens} "
        f"tokens per turn, batches <= {setup.batch_size}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, load average {os.getloadavg()[0]:.1f}"
    )
    print(describe(f"one after another ({setup.sequential})", seq))
    print(describe(f"batched ({setup.concurrent}), cache off", off))
    print(describe(f"batched ({setup.concurrent}), cache on", on))
    if bare is not None:
        print(describe("  same, nothing kept", bare))
        print(f"ratio cache on / nothing kept = {on.rate / bare.rate:.2f}x (the reuse itself)")
    print(f"ratio batched+cache / one after another = {on.rate / seq.rate:.2f}x (goal >= 3x)")
    print(f"ratio batched+cache / batched, cache off = {on.rate / off.rate:.2f}x (goal >= 1.5x)")
    print(f"ratio batched, cache off / one after another = {off.rate / seq.rate:.2f}x (before prefix reuse)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny GPT-2, small sizes")
    ap.add_argument("--batch-size", type=int, default=64, help="hf max_batch_size")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the model runs")
    ap.add_argument("--tokens", type=int, default=32, help="tokens per debater turn")
    ap.add_argument("--rounds", type=int, default=1, help="debate rounds")
    ap.add_argument("--concurrent", type=int, default=32, help="questions debated at once")
    ap.add_argument("--sequential", type=int, default=4, help="questions debated one after another")
    ap.add_argument(
        "--attribute",
        action="store_true",
        help="a fourth run, cache on but keeping nothing: how much of the gain is reuse itself",
    )
    args = ap.parse_args()
    if args.quick:
        setup = Setup(
            "embedded/tiny-gpt2", 8, 2, 8, args.rounds, args.batch_size, args.device, args.attribute
        )
    else:
        setup = Setup(
            "embedded/smollm2",
            args.concurrent,
            args.sequential,
            args.tokens,
            args.rounds,
            args.batch_size,
            args.device,
            args.attribute,
        )
    asyncio.run(bench(setup))


if __name__ == "__main__":
    main()
