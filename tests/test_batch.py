"""Batched graphs (graphs.batch): several rows through one LangGraph run give each row the state a
one-row run gives; a failing row is recorded and skipped while the others go on; graphs that route
on what a model said refuse to run rows in lockstep."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START

from agents import wrap
from agents.backends.scripted import ScriptedBackend
from agents.errors import FatalModelError
from agents.types import GenerateParams, Message
from graphs.batch import BatchGraph
from graphs.debate import DebateConfig, build_debate_graph, debate_input, run_debate
from graphs.interaction import InteractionConfig, build_interaction_graph, interaction_input, run_interaction

ROWS = [  # (question, answer, context): rows differ in what the speakers see and the judge hears
    ("What element is in all organic molecules?", "carbon", "Organic molecules are built on carbon chains."),
    ("What gas do plants release?", "nitrogen", "Plants release oxygen during photosynthesis."),
    ("What is the sky's colour on a clear day?", "blue", "Air scatters blue light the most."),
]


def speaker(messages: Sequence[Message], params: GenerateParams) -> str:
    prompt = messages[-1].content
    answer = re.search(r"Proposed answer: (\w+)", prompt)
    return f"{answer.group(1) if answer else '?'} ({len(prompt)} chars seen). STANCE: correct"


def judge_probs(messages: Sequence[Message], choices: Sequence[str]) -> dict[str, float]:
    p = (len(messages[-1].content) % 17) / 20 + 0.1  # differs per row and per transcript
    return {"Yes": p, "No": 1 - p}


def models() -> tuple[Any, Any]:
    return (
        wrap(ScriptedBackend("scripted/speaker", reply_fn=speaker)),
        wrap(ScriptedBackend("scripted/judge", reply_fn=lambda m, p: "Why?", probs_fn=judge_probs)),
    )


def without_seconds(state: dict[str, Any]) -> dict[str, Any]:
    """A state with wall-clock seconds zeroed: the only field that differs between two runs."""
    out = dict(state)
    out["transcript"] = [t.model_copy(update={"seconds": 0.0}) for t in state.get("transcript", [])]
    if "verdict" in state:
        out["verdict"] = state["verdict"].model_copy(update={"seconds": 0.0})
    out.pop("judge_runs", None)  # (p, method, tokens, seconds) tuples, summarised by the verdict
    return out


@pytest.mark.parametrize(
    "cfg",
    [
        DebateConfig(protocol="blind"),
        DebateConfig(protocol="consultancy", rounds=2),
        DebateConfig(protocol="simultaneous", rounds=2, position_swap=True),
        DebateConfig(protocol="sequential", rounds=2, interactive_judge=True),
        DebateConfig(protocol="n_agent", rounds=2, n_agents=3),
    ],
    ids=lambda c: c.protocol,
)
def test_batched_debates_equal_one_row_runs(cfg: DebateConfig) -> None:
    debater, judge = models()
    one = build_debate_graph(cfg, debater=debater, judge=judge)
    batch = build_debate_graph(cfg, debater=debater, judge=judge, batched=True)

    async def go() -> tuple[list[Any], list[Any]]:
        singles = [await run_debate(one, *row) for row in ROWS]
        out = await batch.ainvoke({"rows": [debate_input(*row) for row in ROWS]})
        return singles, out["rows"]

    singles, rows = asyncio.run(go())
    assert len({s["verdict"].p_true for s in singles}) > 1  # the rows do differ
    assert [without_seconds(r) for r in rows] == [without_seconds(s) for s in singles]


@pytest.mark.parametrize("overseer", ["model", "simulated"])
def test_batched_interactions_equal_one_row_runs(overseer: str) -> None:
    cfg = InteractionConfig(overseer=overseer)  # type: ignore[arg-type]
    assistant, judge = models()
    one = build_interaction_graph(cfg, assistant=assistant, overseer=judge)
    batch = build_interaction_graph(cfg, assistant=assistant, overseer=judge, batched=True)
    golds = [True, False, True]

    async def go() -> tuple[list[Any], list[Any]]:
        singles = [await run_interaction(one, *row, gold=g) for row, g in zip(ROWS, golds, strict=True)]
        inputs = [interaction_input(*row, gold=g) for row, g in zip(ROWS, golds, strict=True)]
        return singles, (await batch.ainvoke({"rows": inputs}))["rows"]

    singles, rows = asyncio.run(go())
    assert [without_seconds(r) for r in rows] == [without_seconds(s) for s in singles]


def test_a_failing_row_is_recorded_and_skipped_while_the_others_go_on() -> None:
    def judge_or_fail(messages: Sequence[Message], choices: Sequence[str]) -> dict[str, float]:
        if "nitrogen" in messages[-1].content:
            raise FatalModelError("judge refused")
        return judge_probs(messages, choices)

    cfg = DebateConfig(protocol="simultaneous", rounds=1, position_swap=True)
    debater, _ = models()
    judge = wrap(ScriptedBackend("scripted/judge", probs_fn=judge_or_fail))
    one = build_debate_graph(cfg, debater=debater, judge=judge)
    batch = build_debate_graph(cfg, debater=debater, judge=judge, batched=True)
    rows = asyncio.run(batch.ainvoke({"rows": [debate_input(*row) for row in ROWS]}))["rows"]
    assert rows[1]["error"] == "FatalModelError: judge refused"
    assert "verdict" not in rows[1]  # the verdict node skipped it: nothing guessed
    for i in (0, 2):
        assert "error" not in rows[i]
        single = asyncio.run(run_debate(one, *ROWS[i]))
        assert without_seconds(rows[i]) == without_seconds(single)


def test_rows_that_would_route_differently_are_refused() -> None:
    class S(TypedDict, total=False):
        x: int
        y: str

    async def read(state: S) -> dict[str, Any]:
        return {"y": "big" if state["x"] > 1 else "small"}

    async def done(state: S) -> dict[str, Any]:
        return {}

    g = BatchGraph(S)
    g.add_node("read", read)
    g.add_node("big", done)
    g.add_node("small", done)
    g.add_edge(START, "read")
    g.add_conditional_edges("read", lambda s: s["y"], ["big", "small"])
    g.add_edge("big", END)
    g.add_edge("small", END)
    graph = g.compile()
    same = asyncio.run(graph.ainvoke({"rows": [{"x": 2}, {"x": 3}]}))["rows"]
    assert [r["y"] for r in same] == ["big", "big"]
    with pytest.raises(RuntimeError, match="rows leaving 'read' took different routes"):
        asyncio.run(graph.ainvoke({"rows": [{"x": 2}, {"x": 0}]}))


def test_interactions_with_follow_ups_are_not_batched() -> None:
    assistant, judge = models()
    cfg = InteractionConfig(max_followups=2)
    assert not cfg.lockstep and InteractionConfig().lockstep
    with pytest.raises(ValueError, match="max_followups: 0"):
        build_interaction_graph(cfg, assistant=assistant, overseer=judge, batched=True)
