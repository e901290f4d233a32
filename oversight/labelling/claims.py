"""Splitting a labelling run's rows among the workers that share its store, so N concurrent `w2sg
label` runs of one config cost what one run costs.

Each worker leases rows before it calls a model (`LabelStore.claim`), a batch at a time, and
renews its leases while it runs (a heartbeat); a row leased by another live worker is skipped
and looked at again later, so a worker ends only when every row is labelled or was tried by it
once. A worker that dies stops renewing: its rows return when its leases expire, at once when it
ran on this machine (its process is gone). A row another worker failed is tried once more here
(the retry a rerun would make); a failure never replaces a success (`oversight.labelling.store`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence

from oversight.labelling.store import LabelStore


def _machine() -> str:
    """This host and PID namespace: where a process id means this process table."""
    try:
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        ns = 0
    return f"{socket.gethostname()}:{ns}"


MACHINE = _machine()


def owner_id() -> str:
    """A worker's name in the lease table: machine, process id, and a nonce (one process may run
    several labelling runs, one after another)."""
    return f"{MACHINE}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def alive(owner: str) -> bool:
    """False only when `owner` ran on this machine and its process is gone; elsewhere its leases
    hold until they expire."""
    machine, _, rest = owner.rpartition("/")[0].rpartition("/")
    if machine != MACHINE or not rest.isdigit():
        return True
    try:
        os.kill(int(rest), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


class Claims:
    """One worker's share of the rows `ids` of (protocol, config hash) in `store`."""

    def __init__(
        self,
        store: LabelStore,
        key: tuple[str, str],
        ids: Sequence[str],
        *,
        lease_s: float,
        batch: int,
    ):
        self.store, self.key = store, key  # (protocol, config hash)
        self.lease_s, self.batch = lease_s, batch
        self.owner = owner_id()
        self.pending: deque[str] = deque(ids)  # not yet asked for
        self.waiting: list[str] = []  # leased by another worker when last asked
        self.ready: deque[str] = deque()  # leased to this worker, not yet handed out
        self.elsewhere: list[str] = []  # labelled by another worker meanwhile

    def _claim(self) -> None:
        """Ask for the next batch of pending rows."""
        ids = [self.pending.popleft() for _ in range(min(self.batch, len(self.pending)))]
        got = self.store.claim(*self.key, ids, self.owner, self.lease_s, alive=alive)
        self.ready.extend(got.mine)
        self.waiting += got.held
        self.elsewhere += got.done

    async def next(self, size: int) -> list[str] | None:
        """Up to `size` row ids leased to this worker, each handed out once; None when no row is
        left to it (every row is labelled, tried here, or handed out)."""
        while len(self.ready) < size and self.pending:
            self._claim()
        while not self.ready:
            if not self.waiting and not self.pending:
                return None
            if not self.pending:  # the rest is with other workers: look again in a while
                await asyncio.sleep(min(1.0, self.lease_s / 4))
                self.pending.extend(self.waiting)
                self.waiting = []
            if self.pending:
                self._claim()
        return [self.ready.popleft() for _ in range(min(size, len(self.ready)))]

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[Claims]:
        """Renew this worker's leases while the block runs; give back what it still holds after."""

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(self.lease_s / 3)
                self.store.renew(self.owner, self.lease_s)

        beat = asyncio.create_task(heartbeat())
        try:
            yield self
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            self.store.release(self.owner)
