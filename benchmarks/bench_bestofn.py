"""Best-of-N batching: N candidate turns for 32 debates in flight vs N sequential calls, same model,
same run.

Each question is a one-round consultancy on SciQ test rows (the consultant shown the support
passage) whose consultant is best-of-N (`graphs.bestofn`): N seeded candidates, each rated by the
judge model's p(side), then the verdict. Ours: the N candidates of a turn are issued at once and 32
debates run concurrently, so the hf backend batches candidates of all debates together. Baseline:
the same code with the N candidates (and their ratings) made one call after another and the
debates one after another, as a loop over `generate` would. Printed: debates/s both ways and the
ratio. The sequential rate is measured on a few questions.

    python benchmarks/bench_bestofn.py           # SmolLM2-135M, N = 4, 32 in flight, 2 sequential, 24 tokens
    python benchmarks/bench_bestofn.py --quick   # tiny GPT-2, N = 4, 8 in flight, 2 sequential (seconds)
    python benchmarks/bench_bestofn.py --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import HFOptions, Model, ModelSpec, get_model
from agents.types import ChoiceProbs, Completion
from graphs.debate import DebateConfig, debate_input
from graphs.invoke import invoke_recorded
from w2sg.datasets import load


class OneAtATime:
    """A `Model` stand-in that lets one call through at a time: N candidates become N sequential
    calls, through the same model, wrapper and graph."""

    def __init__(self, model: Model) -> None:
        self.model, self.name, self.spec = model, model.name, model.spec
        self.lock = asyncio.Lock()

    async def generate(self, *args: Any, **kw: Any) -> Completion:
        async with self.lock:
            return await self.model.generate(*args, **kw)

    async def choice_probs(self, *args: Any, **kw: Any) -> ChoiceProbs:
        async with self.lock:
            return await self.model.choice_probs(*args, **kw)


async def bench(
    model_name: str, n: int, n_concurrent: int, n_sequential: int, max_tokens: int, batch: int, device: str
) -> None:
    rows = [e for e in load("sciq", "test") if e.support][: n_concurrent + n_sequential]
    spec = ModelSpec(name=model_name, hf=HFOptions(device=device, max_batch_size=batch))
    model = get_model(spec, max_concurrency=4 * n * n_concurrent)
    cfg = DebateConfig.model_validate(
        {
            "protocol": "consultancy",
            "consultant_side": "correct",
            "rounds": 1,
            "max_tokens": max_tokens,
            "word_limit": max_tokens,
            "debater": {"model": model_name, "best_of_n": n},
            "judge": model_name,
        }
    )
    ours = cfg.build({"debater": model, "judge": model})
    serial = OneAtATime(model)
    baseline = cfg.build({"debater": serial, "judge": serial})  # type: ignore[dict-item]

    async def one(graph: object, i: int) -> None:
        e = rows[i]
        state = await invoke_recorded(graph, debate_input(e.question, e.answer, e.support or ""))
        assert "error" not in state, state["error"]
        assert len(state["transcript"][0].scores) == n

    await one(ours, 0)  # warm-up: weights, allocator
    calls = model.usage.calls
    t0 = time.perf_counter()
    for i in range(n_concurrent, n_concurrent + n_sequential):
        await one(baseline, i)
    seq = n_sequential / (time.perf_counter() - t0)
    per_debate = (model.usage.calls - calls) / n_sequential
    t0 = time.perf_counter()
    await asyncio.gather(*(one(ours, i) for i in range(n_concurrent)))
    conc = n_concurrent / (time.perf_counter() - t0)
    await model.aclose()
    print(
        f"{model_name} on {device}: one-round best-of-{n} consultancy ({per_debate:.0f} calls a debate: "
        f"{n} candidates, {n} ratings, the verdict), {max_tokens} tokens per candidate, batches <= {batch}"
    )
    print(f"N sequential calls, one debate after another ({n_sequential} debates): {seq:.3f} debates/s")
    print(f"N candidates at once, {n_concurrent} debates in flight:            {conc:.3f} debates/s")
    print(f"ratio in flight/sequential = {conc / seq:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny GPT-2, small sizes")
    ap.add_argument("-n", type=int, default=4, help="candidates per turn (best_of_n)")
    ap.add_argument("--batch-size", type=int, default=64, help="hf max_batch_size")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the model runs")
    ap.add_argument("--tokens", type=int, default=24, help="tokens per candidate turn")
    ap.add_argument("--sequential", type=int, default=2, help="debates timed one after another")
    args = ap.parse_args()
    if args.quick:
        asyncio.run(bench("embedded/tiny-gpt2", args.n, 8, 2, 8, args.batch_size, args.device))
    else:
        model = "embedded/smollm2"
        asyncio.run(bench(model, args.n, 32, args.sequential, args.tokens, args.batch_size, args.device))


if __name__ == "__main__":
    main()
