"""A person as the judge or overseer of a graph: the node that waits for them.

The node calls LangGraph's `interrupt()` with what the person is shown; the state waits in a
checkpointer (SQLite in `oversight.labelling.human`) and `Command(resume=reply)` continues it, from any
process, any time later. A reply is {"verdict": p(true) in [0, 1]} or {"ask": "a follow-up"},
with the person's id ("judge") and their reasons ("explanation") beside it; the verdict's
provenance is kept in the state's `human` entry, from where it reaches the label store.
"""

from __future__ import annotations

import time
from typing import Any

from langgraph.types import interrupt

ACTIONS = ("verdict", "ask")
EXTRA = ("judge", "explanation")  # optional beside the action


def parse_human_reply(reply: object, can_ask: bool) -> tuple[str, float | str]:
    """("verdict", p) or ("ask", text). Raises ValueError with a message for the person."""
    if not isinstance(reply, dict):
        raise ValueError('expected {"verdict": p(true) in [0, 1]} or {"ask": "a follow-up question"}')
    actions = [k for k in reply if k not in EXTRA]
    if len(actions) != 1:
        raise ValueError('expected {"verdict": p(true) in [0, 1]} or {"ask": "a follow-up question"}')
    for k in EXTRA:
        if k in reply and not isinstance(reply[k], str):
            raise ValueError(f"{k} must be text, got {reply[k]!r}")
    key = actions[0]
    value = reply[key]
    if key == "verdict":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(
                f"verdict must be a number in [0, 1] (p that the answer is correct), got {value!r}"
            )
        return "verdict", float(value)
    if key == "ask":
        if not can_ask:
            raise ValueError("no follow-up questions left: give a verdict")
        if not isinstance(value, str) or not value.strip():
            raise ValueError("ask must be a non-empty question")
        return "ask", value.strip()
    raise ValueError(f"unknown reply {key!r}: use 'verdict' or 'ask'")


def wait_for_person(request: dict[str, Any], can_ask: bool) -> tuple[str, float | str, dict[str, Any]]:
    """Interrupt with `request` until a reply parses; returns (action, value, provenance). A reply
    that does not parse is answered with the error and another wait; nothing is written."""
    while True:
        reply = interrupt(request)
        try:
            kind, value = parse_human_reply(reply, can_ask)
            break
        except ValueError as e:
            request = {**request, "error": str(e)}
    assert isinstance(reply, dict)
    provenance = {
        "judge": reply.get("judge") or "anonymous",
        "explanation": reply.get("explanation", ""),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return kind, value, provenance
