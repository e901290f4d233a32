"""Debate graphs with the scripted backend: turn order per protocol, who sees what, quote checks,
position swap, seeds and checkpointing."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from agents import wrap
from agents.backends.scripted import ScriptedBackend
from agents.types import GenerateParams, Message
from graphs.debate import DebateConfig, build_debate_graph, run_debate
from graphs.quotes import check_quotes, tag_quotes
from graphs.render import transcript_for_judge
from graphs.types import Turn

Q, A = "What element is present in all organic molecules?", "oxygen"
CONTEXT = "Organic molecules are built around chains of carbon atoms. Carbon is in all of them."
SECRET = "chains of carbon atoms"  # a phrase only the privileged context holds


def debater_reply(messages: Sequence[Message], params: GenerateParams) -> str:
    """Names the side, the round, and the last turn it could see; quotes the context when shown."""
    prompt = messages[-1].content
    side = re.search(r"answer is (correct|incorrect)\.", prompt)
    who = side.group(1) if side else re.search(r"You are (agent_\d+)", prompt).group(1)  # type: ignore[union-attr]
    rnd = re.search(r"Round (\d+) of", prompt).group(1)  # type: ignore[union-attr]
    seen = re.findall(r"\[round \d+\] (\w+)", prompt.split("so far:")[1])
    quote = f" <quote>{SECRET}</quote> <quote>carbon is rare</quote>" if SECRET in prompt else ""
    return f"{who} r{rnd} saw[{','.join(seen)}]{quote}"


def judge_probs(p_yes: float = 0.8):
    return lambda messages, choices: {"Yes": p_yes, "No": 1 - p_yes}


def run(cfg: DebateConfig, judge: ScriptedBackend | None = None, context: str = CONTEXT):
    debater = ScriptedBackend("scripted/debater", reply_fn=debater_reply)
    judge = judge or ScriptedBackend("scripted/judge", probs_fn=judge_probs())
    graph = build_debate_graph(cfg, debater=wrap(debater), judge=wrap(judge))
    state = asyncio.run(run_debate(graph, Q, A, context))
    return state, debater, judge


def speakers(state: dict) -> list[tuple[str, int]]:
    return [(t.speaker, t.round) for t in state["transcript"]]


def test_sequential_order_and_the_second_debater_sees_the_first() -> None:
    state, debater, _ = run(DebateConfig(protocol="sequential", rounds=2))
    assert speakers(state) == [
        ("debater_correct", 1),
        ("debater_incorrect", 1),
        ("debater_correct", 2),
        ("debater_incorrect", 2),
    ]
    texts = [t.text for t in state["transcript"]]
    assert texts[1].startswith("incorrect r1 saw[debater_correct]")  # same round, first speaker
    assert texts[2].startswith("correct r2 saw[debater_correct,debater_incorrect]")
    assert len(debater.calls) == 4


def test_simultaneous_debaters_do_not_see_each_other_within_a_round() -> None:
    state, _, _ = run(DebateConfig(protocol="simultaneous", rounds=3))
    turns = state["transcript"]
    assert sorted(speakers(state)) == sorted(
        (f"debater_{s}", r) for s in ("correct", "incorrect") for r in (1, 2, 3)
    )
    for t in turns:
        seen = re.search(r"saw\[(.*?)\]", t.text).group(1)  # type: ignore[union-attr]
        assert len([s for s in seen.split(",") if s]) == 2 * (t.round - 1), t.text


def test_first_speaker_is_configurable() -> None:
    state, _, _ = run(DebateConfig(protocol="sequential", rounds=1, first="incorrect"))
    assert speakers(state) == [("debater_incorrect", 1), ("debater_correct", 1)]


def test_consultancy_side_is_seeded_per_question() -> None:
    sides = set()
    for seed in range(12):
        state, _, _ = run(DebateConfig(protocol="consultancy", rounds=2, seed=seed))
        assert speakers(state) == [("consultant", 1), ("consultant", 2)]
        assert len({t.side for t in state["transcript"]}) == 1
        sides.add(state["transcript"][0].side)
        again, _, _ = run(DebateConfig(protocol="consultancy", rounds=2, seed=seed))
        assert again["transcript"][0].side == state["transcript"][0].side
    assert sides == {"correct", "incorrect"}
    fixed, _, _ = run(DebateConfig(protocol="consultancy", consultant_side="incorrect"))
    assert fixed["transcript"][0].side == "incorrect"


def test_blind_judge_sees_only_question_and_answer() -> None:
    state, debater, judge = run(DebateConfig(protocol="blind"))
    assert state["transcript"] == [] and debater.calls == []
    ((kind, messages),) = judge.calls
    assert kind == "choice_probs" and Q in messages[-1].content and SECRET not in messages[-1].content


def test_n_agent_debate_rounds_and_revisions() -> None:
    state, debater, _ = run(DebateConfig(protocol="n_agent", n_agents=3, rounds=2))
    assert sorted(speakers(state)) == sorted((f"agent_{i}", r) for i in (1, 2, 3) for r in (1, 2))
    second = [t for t in state["transcript"] if t.round == 2]
    assert all(re.search(r"saw\[agent_1,agent_2,agent_3\]", t.text) for t in second)
    assert len(debater.calls) == 6


@pytest.mark.parametrize("protocol", ["simultaneous", "sequential", "consultancy", "n_agent", "blind"])
def test_the_judge_never_sees_the_privileged_context(protocol: str) -> None:
    _, debater, judge = run(DebateConfig(protocol=protocol, rounds=2))
    judge_text = " ".join(m[-1].content for _, m in judge.calls)
    assert SECRET not in judge_text.replace(f"<v_quote>{SECRET}</v_quote>", "")
    assert "Source passage" not in judge_text
    if protocol != "blind":
        assert all(SECRET in m[-1].content for _, m in debater.calls)  # the debaters do see it
    # Unless configured to.
    _, _, judge2 = run(DebateConfig(protocol=protocol, rounds=1, judge_sees_context=True))
    assert all(CONTEXT in m[-1].content for _, m in judge2.calls)


def test_debaters_can_be_denied_the_context() -> None:
    _, debater, _ = run(DebateConfig(protocol="sequential", rounds=1, debaters_see_context=False))
    assert all(SECRET not in m[-1].content for _, m in debater.calls)


def test_quotes_are_verified_against_the_context_and_tagged_for_the_judge() -> None:
    quotes = check_quotes(
        "As written: <quote>Chains of  CARBON atoms.</quote> and <quote>carbon is rare</quote>", CONTEXT
    )
    assert [(q.text, q.verified) for q in quotes] == [
        ("Chains of  CARBON atoms.", True),
        ("carbon is rare", False),
    ]
    assert check_quotes("<quote></quote>", CONTEXT)[0].verified is False
    tagged = tag_quotes("<quote>a</quote> <quote>b</quote>", quotes)
    assert tagged == "<v_quote>a</v_quote> <u_quote>b</u_quote>"

    state, _, judge = run(DebateConfig(protocol="sequential", rounds=1))
    assert all([q.verified for q in t.quotes] == [True, False] for t in state["transcript"])
    judge_text = judge.calls[0][1][-1].content
    assert f"<v_quote>{SECRET}</v_quote>" in judge_text and "<u_quote>carbon is rare</u_quote>" in judge_text
    off, _, _ = run(DebateConfig(protocol="sequential", rounds=1, verify_quotes=False))
    assert all(t.quotes == () for t in off["transcript"])


def test_position_swap_judges_both_orders_and_averages() -> None:
    def by_order(messages: Sequence[Message], choices: Sequence[str]) -> dict[str, float]:
        text = messages[-1].content
        first = re.search(r"Debater A \(argues the answer is (\w+)\)", text).group(1)  # type: ignore[union-attr]
        return {"Yes": 0.9 if first == "correct" else 0.5, "No": 0.1 if first == "correct" else 0.5}

    judge = ScriptedBackend("scripted/judge", probs_fn=by_order)
    state, _, _ = run(DebateConfig(protocol="sequential", rounds=1, position_swap=True), judge=judge)
    assert len(judge.calls) == 2
    assert sorted(state["verdict"].p_runs) == [0.5, 0.9] and state["verdict"].p_true == pytest.approx(0.7)
    firsts = {
        re.search(r"\] (Debater \w) \(argues the answer is (\w+)", m[-1].content).groups()
        for _, m in judge.calls
    }  # type: ignore[union-attr]
    assert firsts == {("Debater A", "correct"), ("Debater A", "incorrect")}
    with pytest.raises(ValueError, match="position_swap"):
        run(DebateConfig(protocol="consultancy", position_swap=True))


def test_judge_order_within_a_round_follows_the_presentation() -> None:
    turns = [
        Turn(speaker="debater_correct", side="correct", round=1, text="c1"),
        Turn(speaker="debater_incorrect", side="incorrect", round=1, text="i1"),
    ]
    assert transcript_for_judge(turns, ("incorrect", "correct")).splitlines() == [
        "[round 1] Debater A (argues the answer is incorrect): i1",
        "[round 1] Debater B (argues the answer is correct): c1",
    ]


def test_interactive_judge_asks_between_rounds_and_debaters_see_it() -> None:
    judge = ScriptedBackend("scripted/judge", reply_fn=lambda m, p: "Why carbon?", probs_fn=judge_probs())
    state, debater, _ = run(
        DebateConfig(protocol="sequential", rounds=3, interactive_judge=True), judge=judge
    )
    kinds = [(t.speaker, t.round, t.kind) for t in state["transcript"]]
    assert kinds.count(("judge", 2, "question")) == 1 and kinds.count(("judge", 3, "question")) == 1
    assert kinds[2] == ("judge", 2, "question")  # after round 1, before round 2
    assert "Why carbon?" in debater.calls[2][1][-1].content
    with pytest.raises(ValueError, match="prompted judge"):
        DebateConfig(interactive_judge=True, judge_kind="trained")


def test_same_seed_same_transcript_and_verdict_accounting() -> None:
    a, _, judge = run(DebateConfig(protocol="simultaneous", rounds=2, seed=3))
    b, _, _ = run(DebateConfig(protocol="simultaneous", rounds=2, seed=3))

    def strip(s: dict) -> list[dict]:  # wall-clock seconds differ run to run
        return [t.model_dump(exclude={"seconds"}) for t in s["transcript"]]

    assert strip(a) == strip(b)
    v = a["verdict"]
    assert v.p_true == 0.8 and v.judge == "scripted/judge" and v.method == "scripted"
    # Every turn's tokens plus the judge's (the scripted backend counts words, +1 output token).
    judge_tokens = sum(len(m[-1].content.split()) + 1 for _, m in judge.calls)
    assert v.tokens == sum(t.tokens + t.input_tokens for t in a["transcript"]) + judge_tokens


def test_state_is_serializable_and_a_checkpointer_keeps_it(tmp_path: Path) -> None:
    import sqlite3

    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    cfg = DebateConfig(protocol="sequential", rounds=1)

    async def go() -> tuple[dict, dict]:
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "ckpt.sqlite")) as saver:
            graph = build_debate_graph(
                cfg,
                debater=wrap(ScriptedBackend("scripted/d", reply_fn=debater_reply)),
                judge=wrap(ScriptedBackend("scripted/j", probs_fn=judge_probs())),
                checkpointer=saver,
            )
            final = await run_debate(graph, Q, A, CONTEXT, thread_id="q1")
            saved = await graph.aget_state({"configurable": {"thread_id": "q1"}})
            return final, saved.values

    final, saved = asyncio.run(go())
    assert saved["verdict"] == final["verdict"] and saved["transcript"] == final["transcript"]
    with sqlite3.connect(tmp_path / "ckpt.sqlite") as db:
        assert db.execute("select count(*) from checkpoints").fetchone()[0] > 0
    for t in final["transcript"]:
        assert Turn.model_validate_json(t.model_dump_json()) == t


@pytest.mark.slow
def test_a_real_debate_with_the_embedded_smollm2() -> None:
    from agents import get_model

    model = get_model("embedded/smollm2")
    cfg = DebateConfig(protocol="sequential", rounds=1, max_tokens=24, position_swap=True)
    graph = build_debate_graph(cfg, debater=model, judge=model)
    state = asyncio.run(run_debate(graph, Q, "carbon", CONTEXT))
    asyncio.run(model.aclose())
    assert speakers(state) == [("debater_correct", 1), ("debater_incorrect", 1)]
    assert all(t.text and 0 < t.tokens <= 24 and t.input_tokens > 0 for t in state["transcript"])
    v = state["verdict"]
    assert v.method == "logits" and len(v.p_runs) == 2 and 0 < v.p_true < 1
    assert v.tokens > sum(t.tokens for t in state["transcript"])


def test_quotes_need_whole_words_and_a_few_of_them() -> None:
    ctx = "Hydrocarbons are compounds of hydrogen and carbon."
    got = check_quotes("<quote>carbon</quote> <quote>e</quote> <quote>drocarbons are compounds</quote>", ctx)
    assert [q.verified for q in got] == [False, False, False]
    assert check_quotes("<quote>compounds of hydrogen</quote>", ctx)[0].verified


def test_without_verification_quotes_reach_the_judge_untagged() -> None:
    _, _, judge = run(DebateConfig(protocol="sequential", rounds=1, verify_quotes=False))
    text = judge.calls[0][1][-1].content.split("Transcript:")[1].split("Quotes in")[0]
    assert "<u_quote>" not in text and "<v_quote>" not in text and f"<quote>{SECRET}</quote>" in text


def test_a_finished_thread_is_returned_not_rerun(tmp_path: Path) -> None:
    from graphs.checkpoint import memory_saver

    judge = ScriptedBackend("scripted/j", probs_fn=judge_probs())
    graph = build_debate_graph(
        DebateConfig(protocol="sequential", rounds=1, position_swap=True),
        debater=wrap(ScriptedBackend("scripted/d", reply_fn=debater_reply)),
        judge=wrap(judge),
        checkpointer=memory_saver(),
    )
    first = asyncio.run(run_debate(graph, Q, A, CONTEXT, thread_id="t"))
    again = asyncio.run(run_debate(graph, Q, A, CONTEXT, thread_id="t"))
    assert len(again["transcript"]) == 2 and again["verdict"] == first["verdict"] and len(judge.calls) == 2


def open_run(cfg: DebateConfig, choice: str):
    """A debate with open sides: the scripted protagonist answers the choice prompt with `choice`."""
    debater = ScriptedBackend(
        "scripted/debater",
        reply_fn=lambda m, p: choice if "Which side do you choose" in m[-1].content else debater_reply(m, p),
    )
    judge = ScriptedBackend("scripted/judge", probs_fn=judge_probs())
    graph = build_debate_graph(cfg, debater=wrap(debater), judge=wrap(judge))
    return asyncio.run(run_debate(graph, Q, A, CONTEXT)), judge


@pytest.mark.parametrize("choice, side", [("Correct", "correct"), ("Incorrect", "incorrect")])
def test_open_sides_debate_records_the_choice_and_the_antagonist_argues_the_other(
    choice: str, side: str
) -> None:
    state, judge = open_run(DebateConfig(protocol="sequential", rounds=1, sides="open"), choice)
    first = state["transcript"][0]
    assert (first.kind, first.speaker, first.side, first.text) == ("choice", "protagonist", side, choice)
    assert state["protagonist_side"] == side
    # Both sides are argued, each once, by its own slot; the choice is never shown to the judge.
    args = [t for t in state["transcript"] if t.kind == "argument"]
    assert sorted(t.side for t in args) == ["correct", "incorrect"]
    judge_prompt_text = judge.calls[-1][1][-1].content
    assert "protagonist" not in judge_prompt_text and "Which side" not in judge_prompt_text
    assert state["verdict"].tokens >= first.tokens + first.input_tokens > 0


def test_open_sides_protagonist_is_the_correct_slot_model() -> None:
    # Per-side debaters: whichever side the protagonist picks, the correct slot's model argues it.
    pro = ScriptedBackend(
        "scripted/pro", reply_fn=lambda m, p: "Incorrect" if "Which side" in m[-1].content else "PRO"
    )
    anti = ScriptedBackend("scripted/anti", reply_fn=lambda m, p: "ANTI")
    judge = ScriptedBackend("scripted/judge", probs_fn=judge_probs())
    cfg = DebateConfig(
        protocol="simultaneous",
        rounds=1,
        sides="open",
        debaters={"correct": "scripted/pro", "incorrect": "scripted/anti"},
    )
    others = {"debater_correct": wrap(pro), "debater_incorrect": wrap(anti)}
    graph = build_debate_graph(cfg, judge=wrap(judge), others=others)
    state = asyncio.run(run_debate(graph, Q, A, CONTEXT))
    said = {t.side: t.text for t in state["transcript"] if t.kind == "argument"}
    assert said == {"incorrect": "PRO", "correct": "ANTI"}


def test_open_sides_consultant_chooses_its_side() -> None:
    state, _ = open_run(DebateConfig(protocol="consultancy", rounds=1, sides="open"), "Incorrect")
    assert state["consultant_side"] == "incorrect" == state["protagonist_side"]
    assert [t.side for t in state["transcript"]] == ["incorrect", "incorrect"]  # choice, then the argument
    with pytest.raises(ValueError, match="consultant chooses"):
        DebateConfig(protocol="consultancy", sides="open", consultant_side="correct")
    with pytest.raises(ValueError, match="needs sides to choose"):
        DebateConfig(protocol="n_agent", sides="open")


def test_open_sides_leave_default_identity_unchanged() -> None:
    cfg = DebateConfig(protocol="sequential")
    assert "sides" not in cfg.model_dump() and "choose" not in cfg.model_dump()["prompts"]
    dumped = DebateConfig(protocol="sequential", sides="open").model_dump()
    assert dumped["sides"] == "open" and "choose" in dumped["prompts"]
