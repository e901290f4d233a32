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


class AdaptiveLimit:
    """Calls in flight for one model, between 1 and `ceiling`, adapted to how the server copes
    (AIMD, as TCP does): an overload signal (a timeout, 429, 503) halves the limit, and each call
    that succeeds raises it by 1/limit, so it takes about `limit` successes to grow by one.

    Only the first overload of each "generation" cuts: calls sent before the last cut were sent at
    the old rate, and 16 of them timing out together say one thing, not 16 things. With
    `adaptive=False` it is a plain semaphore of `ceiling`.
    """

    def __init__(self, ceiling: int, adaptive: bool = True):
        self.ceiling = ceiling
        self.adaptive = adaptive
        self.limit = float(ceiling)
        self.lowest = ceiling
        self.cuts = 0
        self.in_flight = 0
        self._generation = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def allowed(self) -> int:
        return max(1, int(self.limit))

    async def acquire(self) -> int:
        """Wait for a slot; returns the generation the call is sent in (for `release`)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (a second asyncio.run): the learned limit stays
            self._loop, self._waiters, self.in_flight = loop, [], 0
        while self.in_flight >= self.allowed:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                self._wake()  # a slot this waiter was woken for must not go unused
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.in_flight += 1
        return self._generation

    def release(self, generation: int, *, ok: bool, overloaded: bool) -> None:
        self.in_flight -= 1
        if self.adaptive:
            if overloaded and generation == self._generation:
                self.limit = max(1.0, self.limit / 2)
                self.lowest = min(self.lowest, self.allowed)
                self.cuts += 1
                self._generation += 1
            elif ok:
                self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
        self._wake()

    def _wake(self) -> None:
        """Wake as many waiters as there are free slots; each re-checks the limit when it runs."""
        free = self.allowed - self.in_flight
        for waiter in [w for w in self._waiters if not w.done()][: max(0, free)]:
            waiter.set_result(None)
