"""Several rows through one graph run: the same nodes and edges, the state a list of rows.

A LangGraph run costs about a millisecond of CPU whatever its nodes do (tasks, channels,
checkpoints of one superstep); a labelling client that runs one graph per row against a fast
server spends more CPU on that than on its HTTP calls. `BatchGraph` builds the same graph over
`{"rows": [state, ...]}`: each node runs its function on every row concurrently and each router
must send all rows the same way, so B rows cost one run. Rows move in lockstep, so a superstep
waits for its slowest call: worth it where calls are fast and alike (a local server), not where
latency varies widely.

A row whose call fails (one of `errors`) gets an "error" entry and is skipped from then on, keeping
what it had (its transcript so far); the other rows go on, and a batch whose every row failed ends.
Node functions and reducers are the unbatched graph's own, so a row's final state is the state a
one-row run would give (per-call seeds depend on the row, not on timing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from typing import Annotated, Any, TypedDict, get_args, get_origin, get_type_hints

from langgraph.graph import END, StateGraph

from agents.errors import ModelError

Row = dict[str, Any]
#: What a row's run may fail with and still be recorded as a failed label (the others go on).
ROW_ERRORS: tuple[type[BaseException], ...] = (ModelError, ValueError)
Reducers = dict[str, Callable[[Any, Any], Any]]


def reducers_of(schema: type) -> Reducers:
    """The keys of a state TypedDict that carry a reducer (Annotated[..., reducer])."""
    out: Reducers = {}
    for key, hint in get_type_hints(schema, include_extras=True).items():
        if get_origin(hint) is Annotated:
            fn = next((m for m in get_args(hint)[1:] if callable(m)), None)
            if fn is not None:
                out[key] = fn
    return out


def apply_update(row: Row, update: Row, reducers: Reducers) -> Row:
    out = dict(row)
    for key, value in update.items():
        out[key] = reducers[key](out[key], value) if key in reducers and key in out else value
    return out


def merge_rows(reducers: Reducers) -> Callable[[list[Row], list[Row]], list[Row]]:
    """The reducer of the `rows` channel: the first write is the input; later writes are one
    partial update per row (parallel nodes of one superstep each write one)."""

    def merge(current: list[Row], updates: list[Row]) -> list[Row]:
        if not current:
            return list(updates)
        return [apply_update(r, u, reducers) for r, u in zip(current, updates, strict=True)]

    return merge


class BatchGraph(StateGraph):
    """A StateGraph over a list of `row_schema` states. Build it exactly as the one-row graph
    (add_node, add_edge, add_conditional_edges); invoke with {"rows": [row state, ...]}."""

    def __init__(self, row_schema: type, errors: tuple[type[BaseException], ...] = ROW_ERRORS):
        reducers = reducers_of(row_schema)
        # Functional syntax: the reducer is a local value, which a (string) class annotation
        # could not name.
        rows = Annotated[list[Row], merge_rows(reducers)]
        super().__init__(TypedDict("BatchState", {"rows": rows}))  # type: ignore[operator]
        self.errors = errors

    def add_node(self, node: Any, action: Any = None, **kwargs: Any) -> BatchGraph:  # type: ignore[override]
        if action is None or not callable(action):
            raise TypeError("BatchGraph.add_node takes (name, function)")
        return super().add_node(node, self._lift(action), **kwargs)

    def add_conditional_edges(self, source: str, path: Any, path_map: Any = None) -> BatchGraph:  # type: ignore[override]
        # A batch whose every row failed ends there: its routers could otherwise loop for ever (no
        # row's round counter moves once its nodes are skipped).
        if isinstance(path_map, list):
            path_map = [*path_map, END]
        elif isinstance(path_map, dict):
            path_map = {**path_map, END: END}
        return super().add_conditional_edges(source, _lift_router(source, path), path_map)

    def _lift(self, fn: Callable[[Row], Any]) -> Callable[[Row], Any]:
        errors = self.errors

        async def one(row: Row) -> Row:
            if "error" in row:
                return {}
            try:
                out = fn(row)
                return (await out if asyncio.iscoroutine(out) else out) or {}
            except errors as err:
                return {"error": f"{type(err).__name__}: {err}"}

        async def node(state: Row) -> Row:
            return {"rows": list(await asyncio.gather(*(one(r) for r in state["rows"])))}

        return node


def _lift_router(source: str, route: Callable[[Row], Any]) -> Callable[[Row], Any]:
    def router(state: Row) -> Any:
        live = [r for r in state["rows"] if "error" not in r]
        if not live:
            return END
        ways = {_key(route(r)) for r in live}
        if len(ways) > 1:
            raise RuntimeError(
                f"rows leaving {source!r} took different routes ({sorted(map(str, ways))}): this graph "
                "routes on what models said, so it cannot run rows in lockstep (use rows_per_graph: 1)"
            )
        return route(live[0])

    return router


def _key(way: Any) -> Hashable:
    return tuple(way) if isinstance(way, Sequence) and not isinstance(way, str) else way
