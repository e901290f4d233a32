"""What a label records: the verdict or the failure of one row, with its provenance (what
produced it, from what, at what cost)."""

from __future__ import annotations

import json
from typing import Any

from agents import Model
from graphs.spec import GraphSpec
from oversight.labelling.store import LabelRow
from w2sg.data import Example


def label_row(
    graph: GraphSpec, e: Example, state: dict[str, Any], models: dict[str, Model], chash: str
) -> LabelRow:
    """One row's verdict, or its failure (recorded, never dropped or guessed; what was said
    before it is kept)."""
    key = {"example_id": e.id, "protocol": graph.protocol_name, "config_hash": chash}
    if "error" in state:
        transcript = [t.model_dump(mode="json") for t in state.get("transcript", [])]
        record = {"question": e.question, "answer": e.answer, "transcript": transcript, **origin(e)}
        return LabelRow(**key, status="failed", error=state["error"], record=record)
    record = _record(graph, e, state, models, chash)
    return LabelRow(**key, status="ok", p_true=state["verdict"].p_true, record=record)


def _record(
    graph: GraphSpec, e: Example, state: dict[str, Any], models: dict[str, Model], chash: str
) -> dict[str, Any]:
    """Provenance of one label: what produced it, from what, at what cost."""
    return {
        "question": e.question,
        "answer": e.answer,
        "gold": e.label,
        "protocol": graph.protocol_name,
        "models": {k: m.name for k, m in models.items()},
        "seed": graph.seed,
        "config_hash": chash,
        "verdict": state["verdict"].model_dump(mode="json"),
        "cost_usd": label_cost(state, models, graph),
        "transcript": [t.model_dump(mode="json") for t in state.get("transcript", [])],
        **origin(e),
    }


def origin(e: Example) -> dict[str, Any]:
    """Where the row came from in the user's data (`source_id`, `source`: its columns), for an
    export to join labels back to it; nothing for a row made in code. Values JSON cannot hold
    (a date, bytes of a parquet file) are kept as their text."""
    if e.source_id is None:
        return {}
    return {"source_id": e.source_id, "source": json.loads(json.dumps(e.source, default=str))}


def label_cost(state: dict[str, Any], models: dict[str, Model], spec: GraphSpec) -> float | None:
    """US dollars for one label from the models' `price:` (None when none has one). Speakers' turns
    at their model's rates; the judge's own tokens (the verdict's total minus the turns') at its
    input rate, as a verdict reads a prompt and emits one token."""
    prices = {k: m.spec.price for k, m in models.items() if m.spec.price is not None}
    if not prices:
        return None
    turns = state.get("transcript", [])
    judge_role, speaker_role = spec.JUDGE, spec.SPEAKER
    cost = 0.0
    for t in turns:
        if t.cost_usd is not None:  # priced by the call(s) that made it (best-of-N: all of them)
            cost += t.cost_usd
            continue
        role = judge_role if t.speaker.startswith(("judge", "overseer")) else speaker_role
        if role in prices:
            cost += prices[role].cost(t.input_tokens, t.tokens)
    judge_tokens = state["verdict"].tokens - sum(t.tokens + t.input_tokens for t in turns)
    if judge_role in prices:
        cost += prices[judge_role].cost(max(0, judge_tokens), 0)
    return cost
