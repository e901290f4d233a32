"""`w2sg label --merge`: the stores of `w2sg label --shard i/n` runs joined into the config's own
`store`, row for row what one run over the whole selection writes (the shards label under the
config hash of the whole selection, and their records are copied as stored)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pydantic import BaseModel, Field

from oversight.labelling import shards, sqlite
from oversight.labelling.label import LabelConfig, selection
from oversight.labelling.store import COLUMNS, LabelStore


class MergeRun(BaseModel):
    store: Path
    shards: int = Field(description="n of the shards i/n")
    merged: list[Path] = Field(description="the shard stores read")
    missing_shards: list[int] = Field(description="shards with no store yet")
    total: int = Field(description="rows of the whole selection")
    ok: int
    failed: int
    missing: list[str] = Field(description="rows no shard has labelled (or tried) yet")


def merge(cfg: LabelConfig) -> MergeRun:
    """Copy each shard store's rows of this config into `cfg.store` (a failure never replaces a
    label there), then count what the joined store holds of the selection."""
    rows, _, chash = selection(cfg)
    n, paths = shards.store_paths(cfg.store)
    key = (cfg.protocol, chash)
    sql = f"SELECT {COLUMNS}, created FROM labels WHERE protocol = ? AND config_hash = ?"
    store = LabelStore(cfg.store)
    try:
        for path in paths.values():

            def copy(db: sqlite3.Connection, path: Path = path) -> None:
                sqlite.check_store(db, path)
                store.put_many(db.execute(sql, key))  # streamed: a shard is never all in memory

            sqlite.read(path, copy)
        status = store.statuses(*key)
    finally:
        store.close()
    return MergeRun(
        store=cfg.store,
        shards=n,
        merged=list(paths.values()),
        missing_shards=[i for i in range(1, n + 1) if i not in paths],
        total=len(rows),
        ok=sum(status.get(e.id) == "ok" for e in rows),
        failed=sum(status.get(e.id) == "failed" for e in rows),
        missing=[e.id for e in rows if e.id not in status],
    )
