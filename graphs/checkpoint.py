"""Checkpointers whose serializer allows exactly our state records (LangGraph warns about, and
will block, unregistered types in checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

STATE_TYPES = [("graphs.types", n) for n in ("Turn", "Quote", "Verdict", "JudgeRun")]


def serializer() -> JsonPlusSerializer:
    return JsonPlusSerializer(allowed_msgpack_modules=STATE_TYPES)


def memory_saver() -> Any:
    from langgraph.checkpoint.memory import InMemorySaver

    return InMemorySaver(serde=serializer())


def sqlite_saver(path: str | Path) -> Any:
    """A synchronous SQLite checkpointer (its own connection, WAL mode) for a long-lived queue."""
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    return SqliteSaver(conn, serde=serializer())
