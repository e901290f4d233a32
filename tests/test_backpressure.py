"""Backpressure (issue 18): calls in flight adapt per model (halve on a timeout, 429 or 503; grow
back by one per `limit` successes), a request's timeout grows with the tokens it may generate, and
the model's usage counts timeouts, overload answers and how far it backed off."""

from __future__ import annotations

import asyncio

import pytest

from agents import ModelSpec, RetriesExhaustedError, get_model
from agents.errors import ModelTimeoutError, RetryableError
from agents.limits import AdaptiveLimit
from agents.testing import FakeServer

FAST_RETRY = {"initial_s": 0.01, "max_wait_s": 0.05, "max_attempts": 8}


async def test_adaptive_limit_halves_once_per_generation_and_grows_back_slowly() -> None:
    limit = AdaptiveLimit(16)
    sent = [await limit.acquire() for _ in range(16)]
    for g in sent[:8]:  # 8 calls sent at the old rate all time out: one signal, one cut
        limit.release(g, ok=False, overloaded=True)
    assert limit.allowed == 8 and limit.cuts == 1
    for g in sent[8:]:
        limit.release(g, ok=True, overloaded=False)
    assert limit.allowed == 8  # 8 successes at limit 8 add about one: not yet 9
    for _ in range(3):  # a new generation's overloads cut again, down to 1 and no further
        limit.release(await limit.acquire(), ok=False, overloaded=True)
    assert limit.allowed == 1 and limit.lowest == 1 and limit.cuts == 4
    for _ in range(200):
        limit.release(await limit.acquire(), ok=True, overloaded=False)
    assert 16 >= limit.allowed >= 10  # recovered, never past the ceiling


async def test_adaptive_limit_bounds_calls_in_flight() -> None:
    limit = AdaptiveLimit(3)
    peak = 0

    async def call() -> None:
        nonlocal peak
        g = await limit.acquire()
        peak = max(peak, limit.in_flight)
        await asyncio.sleep(0.01)
        limit.release(g, ok=True, overloaded=False)

    await asyncio.gather(*(call() for _ in range(20)))
    assert peak == 3 and limit.in_flight == 0
    fixed = AdaptiveLimit(4, adaptive=False)
    fixed.release(await fixed.acquire(), ok=False, overloaded=True)
    assert fixed.allowed == 4 and fixed.cuts == 0


async def test_a_model_backs_off_on_503_and_sends_fewer_calls(server: FakeServer) -> None:
    server.control(latency_s=0.05, faults=["503"] * 4)
    spec = ModelSpec.model_validate(
        {"name": f"openai/fake@{server.url}", "max_concurrency": 16, "retry": FAST_RETRY}
    )
    async with get_model(spec) as m:
        await asyncio.gather(*(m.generate(f"q{i}", max_tokens=2) for i in range(16)))
        assert m.usage.overloaded == 4 and m.usage.concurrency_cuts >= 1
        assert m.usage.lowest_concurrency <= 8 and m.usage.failures == 0
        allowed = m.concurrency.allowed
        server.reset(latency_s=0.05)
        await asyncio.gather(*(m.generate(f"r{i}", max_tokens=2) for i in range(32)))
    # After the cut, no more than the learned limit (plus the slow growth during the batch) is sent.
    assert server.stats()["max_in_flight"] <= allowed + 2 < 16


async def test_without_adaptive_concurrency_the_cap_stays(server: FakeServer) -> None:
    server.control(latency_s=0.05, faults=["503"] * 4)
    spec = {"name": f"openai/fake@{server.url}", "max_concurrency": 16, "retry": FAST_RETRY}
    async with get_model(ModelSpec.model_validate({**spec, "adaptive_concurrency": False})) as m:
        await asyncio.gather(*(m.generate(f"q{i}", max_tokens=2) for i in range(16)))
        assert m.usage.concurrency_cuts == 0 and m.concurrency.allowed == 16


async def test_timeout_grows_with_max_tokens_and_timeouts_are_counted(server: FakeServer) -> None:
    server.control(latency_s=0.6)
    spec = {
        "name": f"openai/fake@{server.url}",
        "retry": {**FAST_RETRY, "max_attempts": 2},
        "openai": {"timeout_s": 0.3, "timeout_per_token_s": 0.1},
    }
    async with get_model(ModelSpec.model_validate(spec)) as m:
        c = await m.generate("long", max_tokens=8)  # 0.3 + 0.8 s: time enough
        assert c.text
        with pytest.raises(RetriesExhaustedError, match=r"timed out after 0\.4s"):  # 0.3 + 0.1 s: not
            await m.generate("short", max_tokens=1)
        assert m.usage.timeouts == 2 and m.usage.failures == 1
    assert issubclass(ModelTimeoutError, RetryableError)
