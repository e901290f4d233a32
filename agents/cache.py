"""Record/replay cache in SQLite, keyed by a hash of backend, model, call kind, messages and params."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from agents.errors import CacheMissError
from agents.types import Message

CacheMode = Literal["record", "replay", "off"]


def cache_key(model: str, kind: str, messages: Sequence[Message], params: dict[str, Any]) -> str:
    """Stable across processes and Python versions: canonical JSON, then sha256."""
    payload = {
        "model": model,
        "kind": kind,
        "messages": [m.model_dump() for m in messages],
        "params": params,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """One SQLite file, safe to share between processes (WAL) and between threads (one lock).

    Values are the JSON of the response record. Writes commit immediately, so a killed run keeps
    everything it had received.
    """

    def __init__(self, path: str | Path, mode: CacheMode = "record"):
        self.path = Path(path)
        self.mode = mode
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            " key TEXT PRIMARY KEY, model TEXT NOT NULL, kind TEXT NOT NULL,"
            " value TEXT NOT NULL, created REAL NOT NULL)"
        )
        self._db.commit()

    def get(self, key: str, *, what: str) -> str | None:
        if self.mode == "off":
            return None
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None and self.mode == "replay":
            raise CacheMissError(
                f"replay cache {self.path} has no entry for {what} (key {key[:12]}); "
                "the call differs from the recorded run (model, messages, params or seed)"
            )
        return None if row is None else row[0]

    def put(self, key: str, model: str, kind: str, value: str) -> None:
        if self.mode != "record":
            return
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, model, kind, value, created) VALUES (?, ?, ?, ?, ?)",
                (key, model, kind, value, time.time()),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
