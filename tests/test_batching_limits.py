"""Dynamic batcher and rate-limit buckets on their own."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from agents.backends.batching import DynamicBatcher
from agents.limits import TokenBucket


def make_batcher(run, size: int = 4, wait: float = 0.02) -> DynamicBatcher:  # type: ignore[no-untyped-def]
    return DynamicBatcher(run, ThreadPoolExecutor(1), max_batch_size=size, max_wait_s=wait)


async def test_batches_fill_up_to_the_bound_and_keep_order() -> None:
    b = make_batcher(lambda xs: [x * 10 for x in xs], size=4)
    out = await asyncio.gather(*[b.submit(i) for i in range(10)])
    assert out == [i * 10 for i in range(10)]
    assert sum(b.batch_sizes) == 10 and max(b.batch_sizes) == 4


async def test_a_failing_batch_fails_its_callers_only() -> None:
    def run(xs: list[int]) -> list[int]:
        if 3 in xs:
            raise ValueError("bad item")
        return xs

    b = make_batcher(run, size=2, wait=0.0)
    with pytest.raises(ValueError, match="bad item"):
        await b.submit(3)
    assert await b.submit(5) == 5


def test_batcher_survives_a_new_event_loop() -> None:
    b = make_batcher(lambda xs: xs)
    assert asyncio.run(b.submit(1)) == 1
    assert asyncio.run(b.submit(2)) == 2


async def test_token_bucket_rate() -> None:
    bucket = TokenBucket(per_minute=1200)  # 20/s, burst 20
    t0 = time.perf_counter()
    for _ in range(40):
        await bucket.acquire()
    elapsed = time.perf_counter() - t0
    assert 0.9 <= elapsed <= 1.6


async def test_token_bucket_debt_delays_later_callers() -> None:
    bucket = TokenBucket(per_minute=600)  # 10/s
    await bucket.acquire(10)
    bucket.adjust(5)  # the call cost 5 more than reserved
    t0 = time.perf_counter()
    await bucket.acquire(1)
    assert time.perf_counter() - t0 >= 0.5


async def test_a_backlog_is_batched_by_size_around_the_oldest_request() -> None:
    seen: list[list[int]] = []

    def run(xs: list[int]) -> list[int]:
        seen.append(sorted(xs))
        time.sleep(0.05)  # while the first batch runs, the rest queue up
        return xs

    b = DynamicBatcher(run, ThreadPoolExecutor(1), max_batch_size=4, max_wait_s=0.0, size_of=lambda x: x)
    first = asyncio.ensure_future(b.submit(1000))  # occupies the worker
    await asyncio.sleep(0.01)
    sizes = [50, 3, 90, 7, 60, 1, 80, 5, 70, 2]  # arrival order
    out = await asyncio.gather(*[b.submit(x) for x in sizes])
    assert out == sizes and await first == 1000
    # By size the backlog is 1 2 3 5 7 50 60 70 80 90. The oldest (50) and its size neighbours go
    # first (5 7 50 60); then the oldest left is 3, with 1 2 3 70; then the rest.
    assert seen == [[1000], [5, 7, 50, 60], [1, 2, 3, 70], [80, 90]]
