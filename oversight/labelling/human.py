"""Real humans in the loop: graphs that wait for a person in a SQLite file.

Any graph whose verdict a person gives (`GraphSpec.needs_person`: an interaction with a human
overseer, a debate with `judge_kind: human`) runs here until the person's node interrupts; its
state and the config that built it stay in the database, one LangGraph thread per item. Items are
queued one at a time (`start`, `w2sg interact --db`) or a whole split at once (`queue_rows`,
`w2sg label`). `pending` lists what waits for a person; `make_reply` validates what a person
typed or submitted (the CLI and the web page both call it), and `answer` resumes the thread with
`Command(resume=reply)`, in whatever process and however much later. A verdict is written to the
label store in the same file (`oversight.labelling.store`, with the person's id, the time and their
explanation) before `answer` returns, so it exports like a model's label: there is no second
store of verdicts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.base import maybe_add_typed_methods
from langgraph.types import Command
from pydantic import BaseModel, Field, TypeAdapter

from agents import closing_all, get_model
from agents.config import Config
from graphs.checkpoint import serializer
from graphs.human import parse_human_reply
from graphs.kinds import AnyGraph
from graphs.spec import GraphSpec, Item
from oversight.labelling.provenance import origin
from oversight.labelling.sqlite import connect
from oversight.labelling.store import LabelRow, LabelStore

THREADS = """CREATE TABLE IF NOT EXISTS w2sg_threads (
    thread_id TEXT PRIMARY KEY, config TEXT NOT NULL, question TEXT, answer TEXT, created REAL)"""
# Columns added for labelling runs (a queue file from before gets them on first use).
# `origin`: the row's place in the user's data (`oversight.labelling.provenance.origin`, as JSON).
COLUMNS = {
    "example_id": "TEXT",
    "protocol": "TEXT",
    "config_hash": "TEXT",
    "gold": "REAL",
    "rules": "TEXT",
    "origin": "TEXT",
}
GRAPH: TypeAdapter[Any] = TypeAdapter(AnyGraph)


class HumanRules(Config):
    """What a person's verdict must carry; kept with each queued item."""

    min_words: int = Field(
        1, ge=0, description="words the explanation needs (0: optional); required by default"
    )
    refuse_half: bool = Field(False, description="refuse p(true) = 50 %: the person has to lean one way")


class Pending(BaseModel):
    thread_id: str
    question: str
    answer: str
    transcript: str
    turns: list[dict[str, Any]] = Field(default_factory=list, description="round, speaker, text")
    can_ask: bool
    error: str | None = None
    context: str | None = None
    stalled: bool = False  # a reply was taken but the run then failed (e.g. the assistant): resume it
    example_id: str = ""
    protocol: str = ""
    rules: HumanRules = Field(default_factory=HumanRules)


class ResumeFailed(RuntimeError):
    """The reply was accepted and stored, but the run failed after it; resuming retries it."""


def parse_p(p: object, *, rules: HumanRules, percent: bool = False) -> float:
    """p(true) in [0, 1] from what a person gave: a number or its text, in [0, 1], or in
    [0, 100] with `percent` (the web slider). Raises ValueError with a message for the person."""
    scale = 100 if percent else 1
    span = "[0, 100]" if percent else "[0, 1]"
    value: object = p
    if isinstance(p, str):
        try:
            value = float(p)
        except ValueError:
            raise ValueError(f"p(true) must be a number in {span}, got {p!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= scale:
        raise ValueError(f"p(true) must be a number in {span}, got {p!r}")
    if rules.refuse_half and value * 100 / scale == 50:
        raise ValueError("p(true) = 50 % is not accepted here: lean towards the side you find more likely")
    return value / scale


def check_explanation(explanation: str, rules: HumanRules) -> str:
    words = len(explanation.split())
    if words < rules.min_words:
        plural = "s" * (rules.min_words > 1)
        raise ValueError(
            f"an explanation of at least {rules.min_words} word{plural} is required (got {words})"
        )
    return explanation.strip()


def make_reply(
    p: object, explanation: str, *, judge: str, rules: HumanRules, percent: bool = False
) -> dict[str, Any]:
    """A verdict reply from what a person gave (`parse_p`, `check_explanation`); the CLI asks
    again on a ValueError, the web page shows it and leaves the item as it was."""
    value = parse_p(p, rules=rules, percent=percent)
    return {"verdict": value, "explanation": check_explanation(explanation, rules), "judge": judge}


def make_ask(question: str, *, judge: str) -> dict[str, Any]:
    if not question.strip():
        raise ValueError("a follow-up question cannot be empty")
    return {"ask": question.strip(), "judge": judge}


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def thread_id_for(cfg: GraphSpec, question: str, answer: str) -> str:
    return _hash(f"{cfg.model_dump_json()}|{question}|{answer}")


def _connect(db: Path) -> sqlite3.Connection:
    con = connect(db, [THREADS])
    have = {r[1] for r in con.execute("PRAGMA table_info(w2sg_threads)")}
    for name, kind in COLUMNS.items():
        if name not in have:
            con.execute(f"ALTER TABLE w2sg_threads ADD COLUMN {name} {kind}")
    return con


@asynccontextmanager
async def _graph(
    db: Path, cfg: GraphSpec, *, models: bool = True, usage: dict[str, Any] | None = None
) -> AsyncIterator[Any]:
    """The thread's graph on the SQLite checkpointer; without `models`, scripted stand-ins for
    every role (reading the queue loads no model). `usage` receives each role's calls."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from agents import wrap
    from agents.backends.scripted import ScriptedBackend

    async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
        saver.serde = maybe_add_typed_methods(serializer())  # what the constructor would do
        built = {
            role: get_model(spec) if models else wrap(ScriptedBackend(f"scripted/{role}"))
            for role, spec in cfg.specs().items()
        }
        try:
            async with closing_all(built):
                yield cfg.build(built, checkpointer=saver)
        finally:
            if usage is not None:
                usage.update({role: m.usage.as_dict() for role, m in built.items()})


def _threads(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        raise FileNotFoundError(
            f"{db}: no such queue (start one with `w2sg label` or `w2sg interact --db` and a person judging)"
        )
    with _connect(db) as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute("SELECT * FROM w2sg_threads ORDER BY created, thread_id")]


def _spec(row: dict[str, Any]) -> GraphSpec:
    return GRAPH.validate_json(row["config"])


def _rules(row: dict[str, Any]) -> HumanRules:
    return HumanRules.model_validate_json(row["rules"]) if row.get("rules") else HumanRules()


async def _start(graph: Any, spec: GraphSpec, tid: str, item: Item) -> None:
    """Run a new thread until the person is needed; an existing thread is left as it is."""
    config = {"configurable": {"thread_id": tid}}
    if not (await graph.aget_state(config)).values:
        await graph.ainvoke(spec.start(item), config=config)


class _Item(BaseModel):
    question: str
    answer: str
    support: str | None = ""
    label: float = 0.0


async def start(db: Path, cfg: GraphSpec, question: str, answer: str, context: str = "") -> str:
    """Queue one item (`w2sg interact --db`); returns the thread id (the same item reuses its
    thread). Its verdict is stored under the thread id, protocol and a hash of `cfg`."""
    if not cfg.needs_person:
        raise ValueError("start() is for a graph a person judges (overseer: human or judge_kind: human)")
    tid = thread_id_for(cfg, question, answer)
    with _connect(db) as con:
        con.execute(
            "INSERT OR IGNORE INTO w2sg_threads (thread_id, config, question, answer, created, example_id, "
            "protocol, config_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (tid, cfg.model_dump_json(), question, answer, time.time(), tid, cfg.protocol_name,
             _hash(cfg.model_dump_json())),
        )  # fmt: skip
    async with _graph(db, cfg) as graph:
        await _start(graph, cfg, tid, _Item(question=question, answer=answer, support=context))
    return tid


async def queue_rows(
    db: Path,
    spec: GraphSpec,
    rows: Sequence[Any],
    *,
    config_hash: str,
    rules: HumanRules,
    concurrency: int = 4,
    usage: dict[str, Any] | None = None,
) -> int:
    """Queue every row (a `w2sg.data.Example`) not queued yet as its own thread, each run until the
    person is needed (the speakers have spoken); returns how many were new (`usage` receives the
    models' calls). `spec`'s roles must be
    inline specs (resolved from `models:`), since the thread's config is all a later process has."""
    with _connect(db) as con:
        known = {r[0] for r in con.execute("SELECT example_id FROM w2sg_threads WHERE config_hash = ?",
                                           (config_hash,))}  # fmt: skip
    new = [e for e in rows if e.id not in known]
    if not new:
        return 0
    blob = spec.model_dump_json()
    tids = {e.id: _hash(f"{config_hash}|{e.id}") for e in new}
    async with _graph(db, spec, usage=usage) as graph:
        slots = asyncio.Semaphore(concurrency)

        async def one(e: Any) -> None:
            async with slots:
                await _start(graph, spec, tids[e.id], e)

        await asyncio.gather(*(one(e) for e in new))
    # Listed once their speakers have spoken (a killed run lists none of its rows; the rerun finds
    # their threads started and only lists them), in one transaction after the checkpointer's
    # connection is closed.
    with _connect(db) as con:
        con.executemany(
            "INSERT OR IGNORE INTO w2sg_threads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (tids[e.id], blob, e.question, e.answer, time.time(), e.id, spec.protocol_name, config_hash,
                 float(e.label), rules.model_dump_json(), json.dumps(origin(e)))
                for e in new
            ],
        )  # fmt: skip
    return len(new)


async def _state(db: Path, row: dict[str, Any]) -> Any:
    async with _graph(db, _spec(row), models=False) as graph:
        return await graph.aget_state({"configurable": {"thread_id": row["thread_id"]}})


def _waiting(row: dict[str, Any], state: Any) -> list[Pending]:
    """What one thread waits for: the person's reply, or (stalled) a resume."""
    extra = {"example_id": row.get("example_id") or "", "protocol": row.get("protocol") or "",
             "rules": _rules(row)}  # fmt: skip
    waits = [it.value for task in state.tasks for it in task.interrupts]
    out = [Pending(thread_id=row["thread_id"], **w, **extra) for w in waits]
    if state.next and not waits:
        v = state.values
        out.append(
            Pending(
                thread_id=row["thread_id"],
                question=v["question"],
                answer=v["answer"],
                transcript="",
                can_ask=False,
                error="the run failed after your last reply; answering resumes it",
                stalled=True,
                **extra,
            )
        )
    return out


async def pending(db: Path, config_hash: str | None = None) -> list[Pending]:
    """Items waiting for a person, and stalled items (a failure after a reply) to resume, oldest
    first (of one labelling run with `config_hash`)."""
    out = []
    for row in _threads(db):
        if config_hash in (None, row.get("config_hash")):
            out += _waiting(row, await _state(db, row))
    return out


def _store(db: Path, row: dict[str, Any], spec: GraphSpec, values: dict[str, Any]) -> LabelRow:
    """A finished thread's verdict as a label: provenance as a model label's, plus the person."""
    record = {
        "question": values["question"],
        "answer": values["answer"],
        "protocol": spec.protocol_name,
        "models": {role: s.name for role, s in spec.specs().items()},
        "seed": spec.seed,
        "config_hash": row["config_hash"],
        "verdict": values["verdict"].model_dump(mode="json"),
        "human": values.get("human", {}),
        "cost_usd": None,
        "transcript": [t.model_dump(mode="json") for t in values.get("transcript", [])],
    }
    if row.get("gold") is not None:
        record["gold"] = row["gold"]
    record |= json.loads(row.get("origin") or "{}")  # none for an item queued before it was kept
    label = LabelRow(
        example_id=row["example_id"] or row["thread_id"],
        protocol=spec.protocol_name,
        config_hash=row["config_hash"] or _hash(row["config"]),
        status="ok",
        p_true=values["verdict"].p_true,
        record=record,
    )
    store = LabelStore(db)
    try:
        store.put(label)  # committed before the caller (CLI, web page) confirms anything
    finally:
        store.close()
    return label


async def collect(db: Path, config_hash: str) -> int:
    """Store the verdict of every finished thread of a labelling run that is not a label yet (a
    process killed between the verdict and its label); returns how many were added."""
    store = LabelStore(db)
    try:
        done = store.db.execute(
            "SELECT example_id FROM labels WHERE config_hash = ? AND status = 'ok'", (config_hash,)
        )
        have = {r[0] for r in done}
    finally:
        store.close()
    added = 0
    for row in _threads(db):
        if row.get("config_hash") == config_hash and row["example_id"] not in have:
            state = await _state(db, row)
            if "verdict" in state.values and not state.next:
                _store(db, row, _spec(row), state.values)
                added += 1
    return added


async def answer(db: Path, thread_id: str, reply: dict[str, Any] | None) -> dict[str, Any]:
    """Validate `reply` against what the thread waits for, then resume it (a stalled thread is
    resumed without a reply); a verdict is committed to the label store before this returns.
    Returns the new state values (with a `verdict` once the person has decided). Raises
    ValueError before touching the state, or ResumeFailed after the reply was stored and the run
    failed (answering again retries)."""
    row = next((r for r in _threads(db) if r["thread_id"] == thread_id), None)
    waiting = _waiting(row, await _state(db, row)) if row is not None else []
    if not waiting:
        raise ValueError(f"{db}: thread {thread_id!r} is not waiting for a person (see `w2sg human queue`)")
    assert row is not None
    item = waiting[0]
    if not item.stalled:
        if reply is None:
            raise ValueError("a reply is needed")
        parse_human_reply(reply, item.can_ask)  # raises with the reason
    spec = _spec(row)
    async with _graph(db, spec) as graph:
        config = {"configurable": {"thread_id": thread_id}}
        try:
            await graph.ainvoke(None if item.stalled else Command(resume=reply), config=config)
        except Exception as e:  # the reply is in the checkpoint; the thread shows as stalled
            raise ResumeFailed(f"your reply was stored, but the run failed after it: {e}") from e
        state = await graph.aget_state(config)
    if "verdict" in state.values and not state.next:
        _store(db, row, spec, state.values)
    return state.values
