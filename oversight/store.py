"""The durable results store of labelling runs: one SQLite row per (example, protocol, config hash).

Each label is committed on its own as soon as it exists, so a run killed at any point (even with
SIGKILL) loses only the calls in flight, and a rerun labels exactly the missing rows: the primary
key makes a duplicate impossible. Failures are rows too (status 'failed', with the error), never
silently dropped; a rerun retries them. A failure never replaces a stored success (a run against
a broken server cannot undo a healthy run's labels); a success replaces a failure.

Opening goes through `oversight.sqlite`: a bad file is one clear error.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from oversight.sqlite import connect, errors

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
)
COLUMNS = "example_id, protocol, config_hash, status, p_true, error, record"
# A success replaces anything; a failure replaces only a failure.
UPSERT = f"""INSERT INTO labels ({COLUMNS}, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (example_id, protocol, config_hash) DO UPDATE SET status = excluded.status,
    p_true = excluded.p_true, error = excluded.error, record = excluded.record, created = excluded.created
WHERE excluded.status = 'ok' OR labels.status = 'failed'"""


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

    def put(self, row: LabelRow) -> bool:
        """Store `row` in one transaction, unless it is a failure and the row has a success.
        Returns whether the row was written."""
        with self._write() as db:
            return db.execute(UPSERT, (*row.values(), time.time())).rowcount > 0

    def p_true(self, protocol: str, config_hash: str) -> dict[str, float]:
        """example id → p(true) of the 'ok' labels, without loading their records."""
        sql = "SELECT example_id, p_true FROM labels WHERE protocol = ? AND config_hash = ? AND status = 'ok'"
        return dict(self._query(sql, (protocol, config_hash)))

    def rows(self, protocol: str, config_hash: str) -> list[LabelRow]:
        sql = f"SELECT {COLUMNS} FROM labels WHERE protocol = ? AND config_hash = ? ORDER BY example_id"
        return [row_of(r) for r in self._query(sql, (protocol, config_hash))]

    def close(self) -> None:
        self.db.close()
