"""Running any kind's compiled graph: one row to its end (`invoke_recorded`, `invoke_once`), and
the per-call seeds every kind's nodes draw (`call_seed`)."""

from __future__ import annotations

import hashlib
from typing import Any

from graphs.batch import ROW_ERRORS


def call_seed(seed: int, *parts: object) -> int:
    """A per-call seed from the config seed and what the call is about, independent of timing."""
    blob = "|".join(map(str, (seed, *parts)))
    return int(hashlib.sha256(blob.encode()).hexdigest()[:8], 16)


async def invoke_recorded(graph: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Run one row to its end; a failed call (`ROW_ERRORS`) comes back as "error" in the last state
    reached, so what was said before it is kept (a judge that fails after a whole debate leaves
    its transcript; the batched graph keeps each row's the same way)."""
    last: dict[str, Any] = dict(state)
    try:
        async for values in graph.astream(state, stream_mode="values"):
            last = values
    except ROW_ERRORS as err:
        return {**last, "error": f"{type(err).__name__}: {err}"}
    return last


async def invoke_once(graph: Any, state: dict[str, Any], thread_id: str | None) -> Any:
    """Run one row to its end. With a checkpointer and a thread_id, a finished thread is returned
    as it is and an interrupted one resumes where it stopped (never restarts on top)."""
    if thread_id is None:
        return await graph.ainvoke(state)
    config = {"configurable": {"thread_id": thread_id}}
    saved = await graph.aget_state(config)
    if saved.values:
        return await graph.ainvoke(None, config=config) if saved.next else saved.values
    return await graph.ainvoke(state, config=config)
