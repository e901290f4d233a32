"""The durable results store of labelling runs: one SQLite row per (example, protocol, config hash).

Each label is committed on its own as soon as it exists, so a run killed at any point (even with
SIGKILL) loses only the calls in flight, and a rerun labels exactly the missing rows: the primary
key makes a duplicate impossible. Failures are rows too (status 'failed', with the error), never
silently dropped; a rerun retries them. A failure never replaces a stored success (a run against
a broken server cannot undo a healthy run's labels); a success replaces a failure.

Workers sharing a store split its rows through leases (`claim`): a row leased by one is not
called by another until its owner stores it, gives it back, or stops renewing the lease (a dead
worker's rows return). Opening goes through `oversight.labelling.sqlite`: a bad file is one clear error.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from oversight.labelling.sqlite import connect, errors

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS labels (
    example_id TEXT NOT NULL,
    protocol TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    p_true REAL,
    error TEXT,
    record TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (example_id, protocol, config_hash)
)""",
    # A row a worker is labelling now; `expires` (unix seconds) moves on while its owner renews it.
    """CREATE TABLE IF NOT EXISTS leases (
    example_id TEXT NOT NULL,
    protocol TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (example_id, protocol, config_hash)
)""",
)
COLUMNS = "example_id, protocol, config_hash, status, p_true, error, record"
# A success replaces anything; a failure replaces only a failure.
UPSERT = f"""INSERT INTO labels ({COLUMNS}, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (example_id, protocol, config_hash) DO UPDATE SET status = excluded.status,
    p_true = excluded.p_true, error = excluded.error, record = excluded.record, created = excluded.created
WHERE excluded.status = 'ok' OR labels.status = 'failed'"""
CHUNK = 500  # ids per `IN (...)` query: well under SQLite's limit on bound variables


class LabelRow(BaseModel):
    example_id: str
    protocol: str
    config_hash: str
    status: str = Field(pattern="^(ok|failed)$")
    p_true: float | None = Field(None, ge=0, le=1)
    error: str | None = None
    record: dict[str, Any] = Field(default_factory=dict, description="provenance, verdict, transcript")

    def values(self) -> tuple[Any, ...]:
        """The row's columns, as stored (`COLUMNS`)."""
        key = (self.example_id, self.protocol, self.config_hash)
        return (*key, self.status, self.p_true, self.error, json.dumps(self.record, sort_keys=True))


def row_of(values: Sequence[Any]) -> LabelRow:
    """A `LabelRow` from the `COLUMNS` of a stored row."""
    keys = COLUMNS.split(", ")
    return LabelRow(**{**dict(zip(keys, values, strict=True)), "record": json.loads(values[6])})


class Claim(BaseModel):
    """What `LabelStore.claim` found among the ids it was given."""

    mine: list[str] = Field(description="now leased to the caller, in the order given")
    held: list[str] = Field(description="leased to another live worker: ask again later")
    done: list[str] = Field(description="labelled ('ok') meanwhile")


class LabelStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.db = connect(self.path, SCHEMA)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, its SQLite errors named by the store's file."""
        with errors(self.path):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with errors(self.path):
            return self.db.execute(sql, args).fetchall()

    def done(self, protocol: str, config_hash: str) -> set[str]:
        """Example ids with an 'ok' label (failed ones are retried on the next run)."""
        sql = "SELECT example_id FROM labels WHERE protocol = ? AND config_hash = ? AND status = 'ok'"
        return {r[0] for r in self._query(sql, (protocol, config_hash))}

    def put(self, row: LabelRow, owner: str | None = None) -> bool:
        """Store `row` in one transaction, unless it is a failure and the row has a success; its
        lease (held by `owner`) ends with it. Returns whether the row was written."""
        values = row.values()
        with self._write() as db:
            written = db.execute(UPSERT, (*values, time.time())).rowcount > 0
            if owner is not None:
                mine = "example_id = ? AND protocol = ? AND config_hash = ? AND owner = ?"
                db.execute(f"DELETE FROM leases WHERE {mine}", (*values[:3], owner))
        return written

    def put_many(self, rows: Iterable[Sequence[Any]]) -> None:
        """Stored rows (`COLUMNS` and `created`, e.g. read from another store) in one transaction,
        by `put`'s rule: a failure never replaces a success."""
        with self._write() as db:
            db.executemany(UPSERT, rows)

    def claim(
        self,
        protocol: str,
        config_hash: str,
        ids: Sequence[str],
        owner: str,
        lease_s: float,
        alive: Callable[[str], bool] = lambda owner: True,
    ) -> Claim:
        """Lease to `owner`, for `lease_s` seconds, every id of `ids` with no 'ok' label and no
        live lease of another owner (`alive(owner)` False: its process is gone, so its leases
        are void), in one transaction."""
        now = time.time()
        with self._write() as db:
            done, leased = set(), {}
            for k in range(0, len(ids), CHUNK):
                part = list(ids[k : k + CHUNK])
                marks = ",".join("?" * len(part))
                key = (protocol, config_hash, *part)
                where = f"protocol = ? AND config_hash = ? AND example_id IN ({marks})"
                ok = f"SELECT example_id FROM labels WHERE status = 'ok' AND {where}"
                done |= {r[0] for r in db.execute(ok, key)}
                live = f"SELECT example_id, owner FROM leases WHERE expires > ? AND owner != ? AND {where}"
                leased.update(db.execute(live, (now, owner, *key)).fetchall())
            held = [i for i in ids if i not in done and i in leased and alive(leased[i])]
            mine = [i for i in ids if i not in done and i not in held]
            db.executemany(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)",
                [(i, protocol, config_hash, owner, now + lease_s) for i in mine],
            )
        return Claim(mine=mine, held=held, done=[i for i in ids if i in done])

    def renew(self, owner: str, lease_s: float) -> None:
        """Move on the expiry of every lease `owner` holds (its heartbeat)."""
        with self._write() as db:
            db.execute("UPDATE leases SET expires = ? WHERE owner = ?", (time.time() + lease_s, owner))

    def release(self, owner: str) -> None:
        """Give back every row `owner` still holds (it stops early), for other workers to take."""
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE owner = ?", (owner,))

    def p_true(self, protocol: str, config_hash: str) -> dict[str, float]:
        """example id → p(true) of the 'ok' labels, without loading their records."""
        sql = "SELECT example_id, p_true FROM labels WHERE protocol = ? AND config_hash = ? AND status = 'ok'"
        return dict(self._query(sql, (protocol, config_hash)))

    def statuses(self, protocol: str, config_hash: str) -> dict[str, str]:
        """example id → 'ok' | 'failed' of every stored row."""
        sql = "SELECT example_id, status FROM labels WHERE protocol = ? AND config_hash = ?"
        return dict(self._query(sql, (protocol, config_hash)))

    def rows(self, protocol: str, config_hash: str) -> list[LabelRow]:
        sql = f"SELECT {COLUMNS} FROM labels WHERE protocol = ? AND config_hash = ? ORDER BY example_id"
        return [row_of(r) for r in self._query(sql, (protocol, config_hash))]

    def close(self) -> None:
        self.db.close()
