"""Real humans in the loop: interaction graphs that wait for a person in a SQLite file.

`start` runs an interaction until the human overseer's node interrupts; the graph state and the
config that built it stay in the database, keyed by a thread id. `pending` lists what waits for a
person; `answer` validates a reply *before* touching the state, then resumes the graph with
`Command(resume=reply)`, in whatever process and however much later.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.base import maybe_add_typed_methods
from langgraph.types import Command
from pydantic import BaseModel

from agents import get_model
from graphs.checkpoint import serializer
from graphs.interaction import InteractionConfig, build_interaction_graph, parse_human_reply, run_interaction

THREADS = """CREATE TABLE IF NOT EXISTS w2sg_threads (
    thread_id TEXT PRIMARY KEY, config TEXT NOT NULL, question TEXT, answer TEXT, created REAL)"""


class Pending(BaseModel):
    thread_id: str
    question: str
    answer: str
    transcript: str
    can_ask: bool
    error: str | None = None
    context: str | None = None
    stalled: bool = False  # a reply was taken but the run then failed (e.g. the assistant): resume it


class ResumeFailed(RuntimeError):
    """The reply was accepted and stored, but the run failed after it; resuming retries it."""


def thread_id_for(cfg: InteractionConfig, question: str, answer: str) -> str:
    blob = f"{cfg.model_dump_json()}|{question}|{answer}"
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@asynccontextmanager
async def _graph(db: Path, cfg: InteractionConfig, *, models: bool = True) -> AsyncIterator[Any]:
    """The thread's graph on the SQLite checkpointer; without `models`, a scripted stand-in
    assistant (reading the queue loads no model)."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from agents import wrap
    from agents.backends.scripted import ScriptedBackend

    async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
        saver.serde = maybe_add_typed_methods(serializer())  # what the constructor would do
        assistant = get_model(cfg.assistant) if models else wrap(ScriptedBackend("scripted/stand-in"))
        try:
            yield build_interaction_graph(cfg, assistant=assistant, checkpointer=saver)
        finally:
            await assistant.aclose()


def _threads(db: Path) -> list[tuple[str, str]]:
    if not db.exists():
        raise FileNotFoundError(f"{db}: no such queue (start one with `w2sg interact` and a human overseer)")
    with sqlite3.connect(db) as con:
        con.execute(THREADS)
        return con.execute("SELECT thread_id, config FROM w2sg_threads ORDER BY created").fetchall()


async def start(db: Path, cfg: InteractionConfig, question: str, answer: str, context: str = "") -> str:
    """Run until the human is needed; returns the thread id (the same item reuses its thread)."""
    if cfg.overseer != "human":
        raise ValueError("start() is for overseer: human")
    tid = thread_id_for(cfg, question, answer)
    with sqlite3.connect(db) as con:
        con.execute(THREADS)
        con.execute(
            "INSERT OR IGNORE INTO w2sg_threads VALUES (?, ?, ?, ?, ?)",
            (tid, cfg.model_dump_json(), question, answer, time.time()),
        )
    async with _graph(db, cfg) as graph:
        state = await graph.aget_state({"configurable": {"thread_id": tid}})
        if not state.values:  # a new item; an existing one is left as it is
            await run_interaction(graph, question, answer, context, thread_id=tid)
    return tid


async def pending(db: Path) -> list[Pending]:
    """Items waiting for a person, and stalled items (a failure after a reply) to resume."""
    from graphs.interaction import render

    out = []
    for tid, cfg_json in _threads(db):
        cfg = InteractionConfig.model_validate_json(cfg_json)
        async with _graph(db, cfg, models=False) as graph:
            state = await graph.aget_state({"configurable": {"thread_id": tid}})
        waits = [it.value for task in state.tasks for it in task.interrupts]
        out += [Pending(thread_id=tid, **w) for w in waits]
        if state.next and not waits:
            v = state.values
            out.append(
                Pending(
                    thread_id=tid,
                    question=v["question"],
                    answer=v["answer"],
                    transcript=render(v.get("transcript", [])),
                    can_ask=False,
                    error="the run failed after your last reply; answering resumes it",
                    stalled=True,
                )
            )
    return out


async def answer(db: Path, thread_id: str, reply: dict[str, Any] | None) -> dict[str, Any]:
    """Validate `reply` against what the thread waits for, then resume it (a stalled thread is
    resumed without a reply). Returns the new state values (with a `verdict` once the overseer has
    decided). Raises ValueError before touching the state, or ResumeFailed after the reply was
    stored and the run failed (answering again retries)."""
    waiting = {p.thread_id: p for p in await pending(db)}
    if thread_id not in waiting:
        raise ValueError(f"{db}: thread {thread_id!r} is not waiting for a person (see `w2sg human queue`)")
    item = waiting[thread_id]
    if not item.stalled:
        if reply is None:
            raise ValueError("a reply is needed")
        parse_human_reply(reply, item.can_ask)  # raises with the reason
    cfg = InteractionConfig.model_validate_json(dict(_threads(db))[thread_id])
    async with _graph(db, cfg) as graph:
        config = {"configurable": {"thread_id": thread_id}}
        try:
            await graph.ainvoke(None if item.stalled else Command(resume=reply), config=config)
        except Exception as e:  # the reply is in the checkpoint; the thread shows as stalled
            raise ResumeFailed(f"your reply was stored, but the run failed after it: {e}") from e
        return (await graph.aget_state(config)).values
