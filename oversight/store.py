"""The durable results store of labelling runs: one SQLite row per (example, protocol, config hash).

Each label is committed on its own as soon as it exists, so a run killed at any point (even with
SIGKILL) loses only the calls in flight, and a rerun labels exactly the missing rows: the primary
key makes a duplicate impossible. Failures are rows too (status 'failed', with the error), never
silently dropped; a rerun retries them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    example_id TEXT NOT NULL,
    protocol TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    p_true REAL,
    error TEXT,
    record TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (example_id, protocol, config_hash)
)
"""


class LabelRow(BaseModel):
    example_id: str
    protocol: str
    config_hash: str
    status: str = Field(pattern="^(ok|failed)$")
    p_true: float | None = Field(None, ge=0, le=1)
    error: str | None = None
    record: dict[str, Any] = Field(default_factory=dict, description="provenance, verdict, transcript")


class LabelStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a killed process
        self.db.execute(SCHEMA)

    def done(self, protocol: str, config_hash: str) -> set[str]:
        """Example ids with an 'ok' label (failed ones are retried on the next run)."""
        rows = self.db.execute(
            "SELECT example_id FROM labels WHERE protocol = ? AND config_hash = ? AND status = 'ok'",
            (protocol, config_hash),
        )
        return {r[0] for r in rows}

    def put(self, row: LabelRow) -> None:
        """Insert or replace (a failure is replaced by a later success), in one transaction."""
        self.db.execute(
            "INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.example_id,
                row.protocol,
                row.config_hash,
                row.status,
                row.p_true,
                row.error,
                json.dumps(row.record, sort_keys=True),
                time.time(),
            ),
        )

    def p_true(self, protocol: str, config_hash: str) -> dict[str, float]:
        """example id → p(true) of the 'ok' labels, without loading their records."""
        cur = self.db.execute(
            "SELECT example_id, p_true FROM labels WHERE protocol = ? AND config_hash = ? AND status = 'ok'",
            (protocol, config_hash),
        )
        return dict(cur.fetchall())

    def rows(self, protocol: str, config_hash: str) -> list[LabelRow]:
        cur = self.db.execute(
            "SELECT example_id, protocol, config_hash, status, p_true, error, record FROM labels "
            "WHERE protocol = ? AND config_hash = ? ORDER BY example_id",
            (protocol, config_hash),
        )
        return [
            LabelRow(
                example_id=r[0],
                protocol=r[1],
                config_hash=r[2],
                status=r[3],
                p_true=r[4],
                error=r[5],
                record=json.loads(r[6]),
            )
            for r in cur
        ]

    def close(self) -> None:
        self.db.close()
