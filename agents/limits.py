"""Client-side rate limits: token buckets for requests per minute and tokens per minute."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """Refills `per_minute / 60` units a second up to `burst_s` seconds' worth.

    `acquire(n)` waits until n units are available, then takes them. `adjust(delta)` corrects a
    reservation once the true cost is known (e.g. actual tokens); the level may go negative, which
    delays later callers, so the long-run rate holds even when estimates were low.
    """

    def __init__(self, per_minute: float, burst_s: float = 1.0):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    async def acquire(self, n: float = 1.0) -> None:
        n = min(n, self.capacity)  # one oversized request must still get through eventually
        async with self._lock:  # FIFO: a waiting caller is not overtaken by later small ones
            while True:
                self._refill()
                if self.level >= n:
                    self.level -= n
                    return
                await asyncio.sleep((n - self.level) / self.rate)

    def adjust(self, delta: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level - delta)


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits for one model; either may be None."""

    def __init__(self, rpm: float | None, tpm: float | None):
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None

    async def acquire(self, estimated_tokens: int) -> None:
        if self.requests:
            await self.requests.acquire(1)
        if self.tokens:
            await self.tokens.acquire(estimated_tokens)

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        if self.tokens:
            self.tokens.adjust(actual_tokens - estimated_tokens)
