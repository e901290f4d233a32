"""Plain progress lines for long stages, readable in a log file, under `nohup` or in CI.

    with track(f"label {judge} ({len(rows)} rows)", len(rows), unit="rows") as t:
        for row in rows:
            ...
            t.advance()

logs, through the logger `w2sg.progress` at INFO, one line when the stage starts, then at most one
every `W2SG_PROGRESS_EVERY` seconds (default 30; 0 = on every update), then one when it ends:

    label judge (40 rows): started, 40 rows
    label judge (40 rows): 12/40 rows (30%), 31s elapsed, ETA 1m12s
    label judge (40 rows): done, 40 rows in 1m45s

The CLI (`oversight.cli.app`) sends these lines to stderr when stderr is not a terminal (or when
`W2SG_PROGRESS=lines`); elsewhere they go wherever the `w2sg.progress` logger is configured to.
Stdlib only (no torch), and cheap enough to call per row or per step: nothing is formatted unless a
line is due. Not thread-safe: advance a tracker from one thread (asyncio tasks are fine).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

LOGGER = "w2sg.progress"
EVERY_ENV = "W2SG_PROGRESS_EVERY"  # seconds between two progress lines of one stage
DEFAULT_EVERY = 30.0

log = logging.getLogger(LOGGER)


def interval() -> float:
    """`W2SG_PROGRESS_EVERY` in seconds (default 30; 0 = every update; a bad value = the default)."""
    raw = os.environ.get(EVERY_ENV, "").strip()
    try:
        every = float(raw) if raw else DEFAULT_EVERY
    except ValueError:
        return DEFAULT_EVERY
    return every if every >= 0 and math.isfinite(every) else DEFAULT_EVERY


def duration(seconds: float) -> str:
    """`3.2s`, `42s`, `5m07s`, `2h03m`."""
    s = max(0.0, seconds)
    if s < 10:
        return f"{s:.1f}s"
    whole = round(s)
    h, rest = divmod(whole, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{sec:02d}s" if m else f"{sec}s"


class Tracker:
    """Progress of one stage; make one with `track`. Use as a context manager or call `close`."""

    def __init__(
        self,
        stage: str,
        total: int | None,
        *,
        unit: str = "",
        start: int = 0,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
        enabled: bool = True,
        quiet: bool = False,
    ):
        self.stage, self.total, self.unit = stage, total, unit
        self.done = self._start = start
        self._every = interval() if every is None else max(0.0, every)
        self._clock = clock
        self._log = logger or log
        self._on = enabled
        # quiet: a stage that is often short (one training run of many) says nothing unless it
        # lasts past the interval; then it reports like any other, and says when it is done.
        self._quiet = quiet
        self._spoke = False
        self._closed = False
        self._t0 = clock()
        self._due = self._t0 + self._every
        if self._enabled() and not quiet:
            what = "" if total is None else f", {self._count(total)}"
            resumed = f" (resuming at {start})" if start else ""
            self._emit(f"{stage}: started{what}{resumed}")

    def advance(self, n: int = 1) -> None:
        """`n` more units done."""
        self.done += n
        self._tick()

    def set(self, done: int) -> None:
        """`done` units done in all."""
        self.done = done
        self._tick()

    def note(self, text: str) -> None:
        """One line now, `<stage>: <text>`, outside the throttle (for rare events: a rung done)."""
        if self._enabled():
            self._emit(f"{self.stage}: {text}")

    def close(self, failed: bool = False) -> None:
        """The final line (once): `done, ...`, or `stopped at ...` when `failed`."""
        if self._closed:
            return
        self._closed = True
        if not self._enabled() or (self._quiet and not self._spoke and not failed):
            return
        elapsed = duration(self._clock() - self._t0)
        if failed:
            self._emit(f"{self.stage}: stopped at {self._progress()} after {elapsed}")
        elif self.total is not None and self.done != self.total:
            self._emit(f"{self.stage}: done, {self._progress()} in {elapsed}")
        else:
            self._emit(f"{self.stage}: done, {self._count(self.done)} in {elapsed}")

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(failed=exc_type is not None)

    # -- internals: nothing below runs on an update unless a line is due --

    def _tick(self) -> None:
        if self._closed or not self._on:
            return
        now = self._clock()
        if now < self._due:
            return
        self._due = now + self._every
        if self._log.isEnabledFor(logging.INFO):
            self._emit(self._line(now))

    def _enabled(self) -> bool:
        return self._on and self._log.isEnabledFor(logging.INFO)

    def _emit(self, line: str) -> None:
        self._spoke = True
        self._log.info("%s", line)

    def _count(self, n: int) -> str:
        return f"{n} {self.unit}" if self.unit else str(n)

    def _progress(self) -> str:
        if self.total is None:
            return self._count(self.done)
        frac = f"{self.done}/{self.total}"
        return f"{frac} {self.unit}" if self.unit else frac

    def _line(self, now: float) -> str:
        elapsed = now - self._t0
        head = f"{self.stage}: {self._progress()}"
        if self.total is None:
            return f"{head}, {duration(elapsed)} elapsed"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        gained = self.done - self._start
        if self.done >= self.total:
            eta = duration(0)
        elif gained > 0 and elapsed > 0:
            eta = duration((self.total - self.done) * elapsed / gained)
        else:
            eta = "?"
        return f"{head} ({pct:.0f}%), {duration(elapsed)} elapsed, ETA {eta}"


def track(stage: str, total: int | None, **options: Any) -> Tracker:
    """Report the progress of `stage`, `total` units long (None: unknown), as plain log lines.

    Options (`Tracker`'s): `unit`; `start`, units already done (a resumed run; the ETA counts only
    this run's rate); `every`, seconds between lines (default: `W2SG_PROGRESS_EVERY`); `clock`, for
    tests; `enabled=False`, a silent tracker (e.g. on every process but the main one);
    `quiet=True`, no start line and no line at all unless the stage outlasts `every` (one of many
    short stages, e.g. a training run)."""
    return Tracker(stage, total, **options)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler on whatever `sys.stderr` is when a record is written (a test runner may
    swap it), with one line per record."""

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(fmt, datefmt="%Y-%m-%d %H:%M:%S"))

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def lines_to_stderr() -> None:
    """Send progress lines to stderr, `<time> <line>`, whatever the root logger's level."""
    for h in list(log.handlers):
        if isinstance(h, StderrHandler):
            log.removeHandler(h)
    log.addHandler(StderrHandler("%(asctime)s %(message)s"))
    log.setLevel(logging.INFO)
    log.propagate = False


def reset() -> None:
    """Undo `lines_to_stderr` / silencing: the logger inherits from the root again."""
    for h in list(log.handlers):
        if isinstance(h, StderrHandler):
            log.removeHandler(h)
    log.setLevel(logging.NOTSET)
    log.propagate = True
