"""Backend throughput against baselines timed in the same run (absolute times drift; ratios don't).

(a) hf: N concurrent `Model.generate` calls (dynamic batching) vs one raw batched `model.generate`
    on the same prompts. Goal: ratio ≥ 0.8.
(b) openai: R requests, C in flight, against the local server with fixed latency: our req/s vs a
    bare `AsyncOpenAI` loop with a semaphore of C. Goal: ratio ≥ 0.9. The ideal is C / latency.

    python benchmarks/bench_backends.py            # full: smollm2, 32 prompts; 2,000 requests at 200 ms
    python benchmarks/bench_backends.py --quick    # seconds: tiny-gpt2, 200 requests
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import interleaved_medians

QUESTIONS = [
    "What element is present in all organic molecules?",
    "What force pulls objects toward Earth?",
    "What organelle makes energy for the cell?",
    "What gas do plants take in for photosynthesis?",
    "What is the boiling point of water at sea level?",
    "Which planet is known as the red planet?",
    "What type of rock forms from cooled lava?",
    "What do we call animals that eat only plants?",
]


def prompts(n: int) -> list[str]:
    return [f"{QUESTIONS[i % len(QUESTIONS)]} (variant {i})" for i in range(n)]


def bench_hf(model_name: str, n: int, max_tokens: int, rounds: int) -> float:
    import torch

    from agents import HFOptions, ModelSpec, get_model
    from agents.types import as_messages

    model = get_model(
        ModelSpec(name=model_name, hf=HFOptions(device="cpu", max_batch_size=n, batch_wait_ms=20))
    )
    backend = model.api
    texts = prompts(n)

    def raw() -> float:
        # The baseline tokenises too (chat template + tokenizer): a user of raw generate must.
        t0 = time.perf_counter()
        seqs = [backend.encode(as_messages(t)) for t in texts]  # type: ignore[attr-defined]
        ids, mask = backend._left_pad(seqs)  # type: ignore[attr-defined]
        with torch.inference_mode():
            backend.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_tokens,  # type: ignore[attr-defined]
                do_sample=False,
                pad_token_id=backend.pad_id,
            )  # type: ignore[attr-defined]
        return time.perf_counter() - t0

    async def ours() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*[model.generate(t, max_tokens=max_tokens) for t in texts])
        return time.perf_counter() - t0

    r, o = interleaved_medians(rounds, raw, lambda: asyncio.run(ours()))
    ratio = r / o
    print(f"(a) hf {model_name}: {n} concurrent requests x {max_tokens} tokens")
    print(
        f"    raw batched model.generate: {r:.2f}s   ours (dynamic batching): {o:.2f}s   "
        f"batches: {backend.gen_batcher.batch_sizes[-3:]}"
    )  # type: ignore[attr-defined]
    print(f"    ratio ours/raw throughput = {ratio:.2f}x  (goal >= 0.8x)")
    return ratio


def bench_openai(requests: int, concurrency: int, latency: float, rounds: int) -> float:
    from openai import AsyncOpenAI

    from agents import get_model
    from agents.testing import FakeServer

    with FakeServer(latency_s=latency) as server:

        async def bare() -> float:
            client = AsyncOpenAI(base_url=server.url, api_key="EMPTY", max_retries=0)
            sem = asyncio.Semaphore(concurrency)

            async def one(i: int) -> None:
                async with sem:
                    await client.chat.completions.create(
                        model="fake", messages=[{"role": "user", "content": f"q{i}"}], max_tokens=8
                    )

            t0 = time.perf_counter()
            await asyncio.gather(*[one(i) for i in range(requests)])
            await client.close()
            return requests / (time.perf_counter() - t0)

        async def ours() -> float:
            model = get_model(f"openai/fake@{server.url}", max_concurrency=concurrency)
            t0 = time.perf_counter()
            await asyncio.gather(*[model.generate(f"q{i}", max_tokens=8) for i in range(requests)])
            rate = requests / (time.perf_counter() - t0)
            await model.aclose()
            return rate

        b, o = interleaved_medians(rounds, lambda: asyncio.run(bare()), lambda: asyncio.run(ours()))
    ideal = concurrency / latency
    print(f"(b) openai: {requests} requests, {concurrency} in flight, {latency * 1000:.0f} ms server latency")
    print(
        f"    ideal {ideal:.0f} req/s   bare AsyncOpenAI+semaphore {b:.0f} req/s ({b / ideal:.2f}x ideal)   "
        f"ours {o:.0f} req/s ({o / ideal:.2f}x ideal)"
    )
    print(f"    ratio ours/bare = {o / b:.2f}x  (goal >= 0.9x)")
    return o / b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny model and few requests (for CI)")
    ap.add_argument("--only", choices=["hf", "openai"], default=None)
    ap.add_argument("--model", default=None, help="hf model for (a); default embedded/smollm2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    if args.only in (None, "hf"):
        bench_hf(
            args.model or ("embedded/tiny-gpt2" if args.quick else "embedded/smollm2"),
            n=32,
            max_tokens=8 if args.quick else 32,
            rounds=1 if args.quick else args.rounds,
        )
    if args.only in (None, "openai"):
        bench_openai(
            args.requests or (200 if args.quick else 2000),
            args.concurrency,
            args.latency,
            rounds=1 if args.quick else args.rounds,
        )


if __name__ == "__main__":
    main()
