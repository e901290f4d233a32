"""Human-AI interaction: turn flow, who sees the privileged context, simulated overseers that
behave as configured, and real-human interrupts resumed from another process."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from cli import w2sg

from agents import wrap
from agents.backends.scripted import ScriptedBackend
from agents.types import GenerateParams, Message
from graphs.interaction import (
    InteractionConfig,
    build_interaction_graph,
    parse_human_reply,
    run_interaction,
)
from graphs.overseers import SimulatedOverseer, assistant_stance, simulate_verdict

ROOT = Path(__file__).resolve().parents[1]
Q, A = "What element is present in all organic molecules?", "carbon"
CONTEXT = "Organic molecules are built around chains of carbon atoms."
SECRET = "chains of carbon atoms"


def assistant_reply(messages: Sequence[Message], params: GenerateParams) -> str:
    prompt = messages[-1].content
    if "The judge asks:" in prompt:
        return "Because " + (SECRET if SECRET in prompt else "I think so") + "."
    return ("The passage says " + SECRET if SECRET in prompt else "I believe so") + ". STANCE: correct"


def run(cfg: InteractionConfig, overseer: ScriptedBackend | None = None, **kw: object):
    assistant = ScriptedBackend("scripted/assistant", reply_fn=assistant_reply)
    overseer = overseer or ScriptedBackend(
        "scripted/overseer", reply_fn=lambda m, p: "Why?", probs_fn=lambda m, c: {"Yes": 0.7, "No": 0.3}
    )
    graph = build_interaction_graph(cfg, assistant=wrap(assistant), overseer=wrap(overseer))
    return asyncio.run(run_interaction(graph, Q, A, CONTEXT, **kw)), assistant, overseer  # type: ignore[arg-type]


def test_assistant_briefs_then_the_overseer_asks_up_to_k_followups() -> None:
    state, assistant, overseer = run(InteractionConfig(max_followups=2))
    flow = [(t.speaker, t.kind) for t in state["transcript"]]
    assert flow == [
        ("assistant", "argument"),
        ("overseer", "question"),
        ("assistant", "answer"),
        ("overseer", "question"),
        ("assistant", "answer"),
    ]
    assert len(assistant.calls) == 3 and [k for k, _ in overseer.calls] == [
        "generate",
        "generate",
        "choice_probs",
    ]
    assert state["verdict"].p_true == 0.7 and state["verdict"].method == "scripted"
    none = ScriptedBackend(
        "scripted/o", reply_fn=lambda m, p: "NONE", probs_fn=lambda m, c: {"Yes": 1, "No": 0}
    )
    state, _, _ = run(InteractionConfig(max_followups=3), overseer=none)
    assert [t.speaker for t in state["transcript"]] == ["assistant"]  # NONE: no more questions


def test_privileged_context_reaches_the_overseer_only_when_configured() -> None:
    _, assistant, overseer = run(InteractionConfig(max_followups=1))
    assert all(SECRET in m[-1].content for _, m in assistant.calls)
    shown_to_overseer = " ".join(m[-1].content for _, m in overseer.calls)
    # It sees what the assistant chose to say (a quote), never the passage itself.
    assert CONTEXT not in shown_to_overseer and "Reference passage" not in shown_to_overseer
    _, _, overseer2 = run(InteractionConfig(overseer_sees_context=True))
    assert all(CONTEXT in m[-1].content for _, m in overseer2.calls)
    _, assistant3, _ = run(InteractionConfig(assistant_sees_context=False))
    assert all(SECRET not in m[-1].content for _, m in assistant3.calls)


def rate(hits: Sequence[bool]) -> tuple[float, float]:
    p = sum(hits) / len(hits)
    return p, 1.96 * math.sqrt(p * (1 - p) / len(hits)) + 1e-9


@pytest.mark.parametrize(
    ("sim", "stance", "expected"),
    [
        (SimulatedOverseer(accuracy=0.7, deference=0.0), "correct", 0.7),  # on its own
        (SimulatedOverseer(accuracy=1.0, lapse_rate=0.4, deference=0.0), "correct", 0.8),  # 0.6 + 0.4/2
        (SimulatedOverseer(accuracy=1.0, deference=0.3), "wrong", 0.7),  # defers to a wrong assistant
        (SimulatedOverseer(accuracy=0.5, deference=0.8), "right", 0.9),  # 0.8 + 0.2 · 0.5
        # The stance sits beyond a 3-word reading budget: no deference, own accuracy.
        (SimulatedOverseer(accuracy=0.6, deference=1.0, reading_budget=3), "right", 0.6),
    ],
)
def test_simulated_overseers_behave_as_configured(
    sim: SimulatedOverseer, stance: str, expected: float
) -> None:
    hits = []
    for i in range(3000):
        gold = i % 2 == 0
        said = {"right": gold, "wrong": not gold, "correct": None}[stance]
        transcript = "The assistant explains it at length. " + (
            f"STANCE: {'correct' if said else 'incorrect'}" if said is not None else ""
        )
        p, _ = simulate_verdict(sim, f"item-{i}", gold, transcript)
        hits.append((p > 0.5) == gold)
    got, half = rate(hits)
    assert abs(got - expected) <= half + 0.005, (got, expected)
    # Seeded per item: the same item always gets the same verdict.
    assert simulate_verdict(sim, "item-7", True, "x") == simulate_verdict(sim, "item-7", True, "x")


def test_stance_parsing_and_simulated_overseer_in_the_graph() -> None:
    assert assistant_stance("foo STANCE: Incorrect", None) is False
    assert assistant_stance("a b c d STANCE: correct", 3) is None
    cfg = InteractionConfig(overseer="simulated", simulated=SimulatedOverseer(accuracy=1.0, deference=0.0))
    state, _, overseer = run(cfg, gold=False)
    assert state["verdict"].p_true == pytest.approx(0.1) and state["verdict"].method == "simulated:own"
    assert overseer.calls == []
    with pytest.raises(ValueError, match="gold"):
        run(cfg)


def test_human_replies_are_validated() -> None:
    assert parse_human_reply({"verdict": 0.25}, True) == ("verdict", 0.25)
    assert parse_human_reply({"ask": " why? "}, True) == ("ask", "why?")
    for bad, msg in [
        ({"verdict": 1.5}, "in \\[0, 1\\]"),
        ({"verdict": "yes"}, "number"),
        ({"verdict": True}, "number"),
        ({"ask": ""}, "non-empty"),
        ({"shrug": 1}, "unknown reply"),
        ("0.5", "expected"),
        ({"verdict": 0.5, "ask": "x"}, "expected"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_human_reply(bad, True)
    with pytest.raises(ValueError, match="no follow-up"):
        parse_human_reply({"ask": "why?"}, False)


def test_a_real_human_answers_from_other_processes(tmp_path: Path) -> None:
    cfg = tmp_path / "human.yaml"
    cfg.write_text(
        "assistant: scripted\noverseer: human\nmax_followups: 1\n"
        "prompts: {assistant: 'Brief for {question}. STANCE: correct'}\n"
    )
    db = tmp_path / "queue.sqlite"
    out = w2sg("interact", str(cfg), "-q", Q, "-a", A, "--context", CONTEXT, "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert "waiting for a person" in out.stdout
    queue = w2sg("human", "queue", str(db))
    assert queue.returncode == 0 and "1 waiting" in queue.stdout and Q in queue.stdout

    # A bad reply is refused and changes nothing.
    bad = w2sg("human", "answer", str(db), "--verdict", "7")
    assert bad.returncode != 0 and "p(true) must be a number in [0, 1]" in bad.stderr
    assert "nothing was changed" in bad.stderr
    assert "1 waiting" in w2sg("human", "queue", str(db)).stdout

    # A follow-up (typed at the prompt, starting with ?), answered by the assistant, then a verdict.
    asked = w2sg("human", "answer", str(db), stdin="?Are you sure?\n")
    assert asked.returncode == 0, asked.stderr
    assert "waits for your verdict" in asked.stdout and CONTEXT not in asked.stdout
    no_more = w2sg("human", "answer", str(db), "--ask", "And again?")
    assert no_more.returncode != 0 and "no follow-up questions left" in no_more.stderr
    done = w2sg("human", "answer", str(db), stdin="0.8\nThe brief convinced me\n")
    assert done.returncode == 0, done.stderr
    assert "recorded p(true) = 0.800" in done.stdout
    assert "0 waiting" in w2sg("human", "queue", str(db)).stdout

    # Same item again: its thread is reused, not duplicated or reset.
    again = w2sg("interact", str(cfg), "-q", Q, "-a", A, "--db", str(db))
    assert again.returncode == 0 and "0 waiting" in w2sg("human", "queue", str(db)).stdout


@pytest.mark.slow
def test_a_real_interaction_with_the_embedded_smollm2() -> None:
    from agents import get_model

    model = get_model("embedded/smollm2")
    cfg = InteractionConfig(max_followups=1, max_tokens=24)
    graph = build_interaction_graph(cfg, assistant=model, overseer=model)
    state = asyncio.run(run_interaction(graph, Q, A, CONTEXT))
    asyncio.run(model.aclose())
    assert state["transcript"][0].speaker == "assistant"
    assert all(t.text and t.tokens > 0 for t in state["transcript"])
    assert state["verdict"].method == "logits" and 0 < state["verdict"].p_true < 1


def test_cli_interact_with_a_simulated_overseer(tmp_path: Path) -> None:
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("assistant: scripted\noverseer: simulated\nsimulated: {accuracy: 1.0, deference: 0.0}\n")
    out = w2sg("interact", str(cfg), "-q", Q, "-a", A, "--gold")
    assert out.returncode == 0, out.stderr
    assert "assistant (argument)" in out.stdout and "p(true) = 0.900 (simulated:own)" in out.stdout
    missing = w2sg("interact", str(cfg), "-q", Q, "-a", A)
    assert missing.returncode != 0 and "--gold" in missing.stderr
    human = tmp_path / "h.yaml"
    human.write_text("assistant: scripted\noverseer: human\n")
    assert "--db" in w2sg("interact", str(human), "-q", Q, "-a", A).stderr


def test_a_thread_that_fails_after_a_reply_is_listed_as_stalled_and_resumes(tmp_path: Path) -> None:
    from agents import register_provider
    from agents.errors import FatalModelError
    from oversight.labelling import human

    fails = {"left": 1}

    def flaky(messages: Sequence[Message], params: GenerateParams) -> str:
        if "The judge asks:" in messages[-1].content and fails["left"]:
            fails["left"] -= 1
            raise FatalModelError("assistant crashed")
        return "An answer. STANCE: correct"

    register_provider("flaky", lambda spec: ScriptedBackend(spec.name, reply_fn=flaky))
    cfg = InteractionConfig(assistant="flaky/a", overseer="human", max_followups=1)
    db = tmp_path / "q.sqlite"
    tid = asyncio.run(human.start(db, cfg, Q, A))
    with pytest.raises(human.ResumeFailed, match="assistant crashed"):
        asyncio.run(human.answer(db, tid, {"ask": "Why?"}))
    (item,) = asyncio.run(human.pending(db))
    assert item.stalled and "resumes it" in (item.error or "")
    state = asyncio.run(human.answer(db, tid, None))  # resumes: the assistant answers this time
    assert [t.kind for t in state["transcript"]] == ["argument", "question", "answer"]
    (item,) = asyncio.run(human.pending(db))
    assert not item.stalled and not item.can_ask
    state = asyncio.run(human.answer(db, tid, {"verdict": 0.25, "explanation": "fine"}))
    assert state["verdict"].p_true == 0.25 and asyncio.run(human.pending(db)) == []
