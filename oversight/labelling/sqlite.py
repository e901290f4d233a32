"""Opening this package's SQLite files (label stores, and the queues of human judging kept in
them): a file that cannot serve is one `StoreError` naming it and what to do, and nothing is
written to it; two processes creating one file at once both succeed; a reader never writes.

SQLite reports problems by exception classes that name no file ("file is not a database",
"database disk image is malformed", "attempt to write a readonly database", "unable to open
database file"); `errors` turns each into a sentence about the path, and `StoreError` is a
`ValueError`, so the CLI's one error boundary prints it as `error: ...` with exit status 2.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
#: Seconds a statement waits for another process's lock before giving up.
BUSY_S = 30.0
#: Tables that make a database one of ours: a label store, or a queue of items for people.
OURS = frozenset({"labels", "w2sg_threads"})


class StoreError(ValueError):
    """A file that cannot serve as a label store; the message names it and what to do."""


def _advice(e: sqlite3.Error) -> str:
    """What SQLite's message means for the user, and what to do about it."""
    msg = str(e)
    if "not a database" in msg:
        return "is not a SQLite database, so not a label store; point at a store or a new file"
    if "malformed" in msg or "corrupt" in msg:
        return (
            f"is damaged ({msg}); restore it from a copy, or move it aside (the next run then "
            "labels every row again)"
        )
    if "readonly" in msg or "unable to open" in msg or "disk I/O" in msg:
        return (
            f"cannot be opened for writing ({msg}); make the file and its folder writable, or copy "
            "the store somewhere writable"
        )
    if "locked" in msg or "busy" in msg:
        return f"is locked by another process ({msg}) for over {BUSY_S:.0f} s; retry once it is done"
    return f"SQLite error: {msg}"


@contextmanager
def errors(path: str | Path) -> Iterator[None]:
    """SQLite errors inside the block become one `StoreError` about `path`."""
    try:
        yield
    except sqlite3.Error as e:
        raise StoreError(f"{path}: {_advice(e)}") from None


def check_file(path: Path, *, create: bool) -> None:
    """Refuse, without opening it, what SQLite would misuse: a folder, a file that is not a SQLite
    database (SQLite would fail on it, or, if empty, silently make it one). `create`: a missing
    or empty file may become a new store."""
    if path.is_dir():
        raise StoreError(f"{path}: is a folder, not a store file; name a file, e.g. {path / 'labels.sqlite'}")
    if not path.exists():
        if create:
            return
        raise StoreError(f"{path}: no such store")
    with path.open("rb") as f:
        head = f.read(len(HEADER))
    if not head and create:
        return
    if head != HEADER:
        what = "an empty file" if not head else "not a SQLite database"
        raise StoreError(f"{path}: {what}, so not a label store (left as it is); point at a store")
    if create:
        # SQLite would open a read-only file read-only, leave -wal and -shm files beside it, and
        # fail only at the first label: refuse it now (opening to write changes nothing).
        try:
            path.open("r+b").close()
        except PermissionError:
            raise StoreError(
                f"{path}: cannot be opened for writing (a read-only file); make it writable, or copy "
                "the store somewhere writable"
            ) from None


def _retry_busy(step: Callable[[], T], deadline: float) -> T:
    """Run `step`, again on SQLITE_BUSY until `deadline`: a new file's switch to WAL takes an
    exclusive lock that SQLite refuses at once (no busy wait) while another process is opening it
    too, so two processes creating one store would otherwise fail one time in a few."""
    while True:
        try:
            return step()
        except sqlite3.OperationalError as e:
            if ("locked" not in str(e) and "busy" not in str(e)) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.002, 0.02))  # jittered: the two openers part ways


def tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def connect(path: str | Path, setup: Sequence[str] = ()) -> sqlite3.Connection:
    """Open (creating if missing) one of our SQLite files for writing, in WAL mode, with the
    `setup` statements (CREATE TABLE IF NOT EXISTS ...) run. A database of something else (a
    record cache, a checkpoint file) is refused before anything is written to it."""
    path = Path(path)
    check_file(path, create=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with errors(path):
        db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_S, check_same_thread=False)
        try:

            def init() -> None:
                if (have := tables(db)) and not have & OURS:
                    raise StoreError(
                        f"{path}: a SQLite database of something else (tables: {', '.join(sorted(have))}), "
                        "not a label store; it is left as it is: point at a store or a new file"
                    )
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a killed process
                for statement in setup:
                    db.execute(statement)

            _retry_busy(init, time.monotonic() + BUSY_S)
            # Fail here, before any work, when the file or its folder is read-only (a store in
            # WAL mode may open and even be read without a write being possible).
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        except BaseException:
            db.close()  # as the last connection, SQLite removes the -wal and -shm files it made
            raise
    return db


def _stamp(path: Path) -> tuple[int, int]:
    s = path.stat()
    return s.st_size, s.st_mtime_ns


def read(path: str | Path, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`fn` over `path` opened read-only: nothing is ever written to it or beside it, and a file
    that is not a SQLite database is refused untouched. When no process has the store open (no
    `-wal` file), the file is read as immutable (SQLite would otherwise leave `-wal` and `-shm`
    files behind); if a writer appeared meanwhile, it is read again through SQLite's locks."""
    path = Path(path)
    check_file(path, create=False)
    wal = path.with_name(path.name + "-wal")
    uri = path.resolve().as_uri()
    if not wal.exists():
        before = _stamp(path)
        with errors(path):
            db = sqlite3.connect(f"{uri}?immutable=1", uri=True)
            try:
                result = fn(db)
            finally:
                db.close()
        if not wal.exists() and _stamp(path) == before:
            return result
    with errors(path):
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_S)
        try:
            return fn(db)
        finally:
            db.close()


def check_store(db: sqlite3.Connection, path: str | Path) -> None:
    """Refuse a database that is neither a label store nor a queue of ours."""
    have = tables(db)
    if not have & OURS:
        listed = ", ".join(sorted(have)) or "none"
        raise StoreError(f"{path}: not a label store (tables: {listed}); it is left as it is")
