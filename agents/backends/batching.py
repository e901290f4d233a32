"""Dynamic batching: concurrent async calls are gathered into one batched call on a worker thread.

A batch starts when the first request arrives and closes after `max_wait_s` or at
`max_batch_size` requests, whichever is first. While the worker runs one batch, new requests
queue up and form the next, so throughput grows with concurrency without any caller waiting long.

With `size_of`, a backlog longer than one batch is batched by size: the next batch is the run of
similar-sized requests around the oldest waiting one, so padding (prefill compute, attention over
pad tokens) shrinks and no request waits behind an endless stream of shorter ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


class DynamicBatcher(Generic[Req, Res]):
    def __init__(
        self,
        run_batch: Callable[[list[Req]], list[Res]],
        executor: Executor,
        *,
        max_batch_size: int = 32,
        max_wait_s: float = 0.005,
        size_of: Callable[[Req], int] | None = None,
    ):
        self.run_batch = run_batch
        self.size_of = size_of
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.batch_sizes: list[int] = []  # observed, for tests and benchmarks
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[Req, asyncio.Future[Res]]]
        self._added: asyncio.Event
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, request: Req) -> Res:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._worker is None or self._worker.done():
            # A new event loop (a second asyncio.run) gets a fresh queue and worker.
            self._loop = loop
            self._queue = asyncio.Queue()
            self._added = asyncio.Event()
            self._worker = loop.create_task(self._work())
        future: asyncio.Future[Res] = loop.create_future()
        self._queue.put_nowait((request, future))
        self._added.set()
        return await future

    def close(self) -> None:
        """Stop the worker task, so that a closed model leaves no task pending on its event loop."""
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        backlog: list[tuple[Req, asyncio.Future[Res]]] = []  # taken off the queue, in arrival order
        while True:
            if not backlog:
                backlog.append(await self._queue.get())
            deadline = loop.time() + self.max_wait_s
            while len(backlog) < self.max_batch_size:
                if not self._queue.empty():
                    backlog.append(self._queue.get_nowait())
                    continue
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                # Wait on an Event, not on queue.get(): cancelling a get() on timeout can drop an
                # item on Python 3.11, while a missed wake-up here only costs a re-check.
                self._added.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._added.wait(), timeout)
            while not self._queue.empty():  # the whole backlog, so batches can be formed by size
                backlog.append(self._queue.get_nowait())
            backlog = [(r, f) for r, f in backlog if not f.cancelled()]  # no slots for the gone
            if not backlog:
                continue
            try:
                batch, backlog = self._take(backlog)
            except Exception as e:  # a failing size_of must not kill the worker and strand callers
                for _, f in backlog:
                    if not f.done():
                        f.set_exception(e)
                backlog = []
                continue
            live = [(r, f) for r, f in batch if not f.cancelled()]
            if not live:
                continue
            self.batch_sizes.append(len(live))
            try:
                results = await loop.run_in_executor(self.executor, self.run_batch, [r for r, _ in live])
            except Exception as e:  # one bad batch fails its callers, not the worker
                for _, f in live:
                    if not f.done():
                        f.set_exception(e)
                continue
            if len(results) != len(live):
                err = RuntimeError(f"batch function returned {len(results)} results for {len(live)} requests")
                for _, f in live:
                    if not f.done():
                        f.set_exception(err)
                continue
            for (_, f), res in zip(live, results, strict=True):
                if not f.done():
                    f.set_result(res)

    def _take(
        self, backlog: list[tuple[Req, asyncio.Future[Res]]]
    ) -> tuple[list[tuple[Req, asyncio.Future[Res]]], list[tuple[Req, asyncio.Future[Res]]]]:
        """(next batch, the rest, still in arrival order)."""
        n = self.max_batch_size
        if len(backlog) <= n or self.size_of is None:
            return backlog[:n], backlog[n:]
        size_of = self.size_of
        order = sorted(range(len(backlog)), key=lambda i: size_of(backlog[i][0]))
        oldest = order.index(0)  # backlog[0] arrived first
        start = min(max(0, oldest - n // 2), len(order) - n)
        chosen = set(order[start : start + n])
        return [backlog[i] for i in sorted(chosen)], [x for i, x in enumerate(backlog) if i not in chosen]
