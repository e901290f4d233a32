"""The `extractive` reader: quotes for its side, verbatim, through the real debate and interaction
graphs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents import FatalModelError, ModelSpec, get_model
from graphs.debate import DebateConfig, build_debate_graph, run_debate
from graphs.interaction import InteractionConfig, build_interaction_graph, run_interaction
from w2sg.datasets import load

ROOT = Path(__file__).resolve().parents[1]

PASSAGE = (
    "Carbon is present in all organic molecules, and its role in macromolecules is central. "
    "Sodium is an alkali metal that reacts with water. "
    "Since the 1800s, the use of fossil fuels has accelerated."
)
Q = "What element is present in all organic molecules?"


def debate(answer: str, rounds: int = 1) -> dict:
    cfg = DebateConfig(protocol="sequential", rounds=rounds, debater="extractive", judge="scripted")
    graph = build_debate_graph(cfg, debater=get_model("extractive"), judge=get_model("scripted/judge"))
    state = asyncio.run(run_debate(graph, Q, answer, PASSAGE))
    return {(t.side, t.round): t for t in state["transcript"]}


def test_each_side_quotes_its_evidence_verbatim() -> None:
    right = debate("carbon")
    assert "Carbon is present in all organic molecules" in right[("correct", 1)].text
    assert "Carbon" not in right[("incorrect", 1)].text.split("<quote>")[1]  # evidence pointing elsewhere
    wrong = debate("sodium")
    assert "Sodium is an alkali metal" in wrong[("correct", 1)].text  # the best it has mentions sodium
    for t in [*right.values(), *wrong.values()]:
        assert t.quotes and all(q.verified for q in t.quotes), t.text  # the graph checked them


def test_a_later_round_does_not_repeat_its_own_quote() -> None:
    turns = debate("carbon", rounds=2)
    assert turns[("correct", 1)].quotes[0].text != turns[("correct", 2)].quotes[0].text


def test_word_limit_is_kept_with_a_verbatim_prefix() -> None:
    cfg = DebateConfig(protocol="consultancy", consultant_side="correct", rounds=1, word_limit=8)
    graph = build_debate_graph(cfg, debater=get_model("extractive"), judge=get_model("scripted/judge"))
    (turn,) = asyncio.run(run_debate(graph, Q, "carbon", PASSAGE))["transcript"]
    assert len(turn.text.split()) <= 8 and turn.quotes[0].verified


def test_assistant_states_a_stance_from_the_passage() -> None:
    cfg = InteractionConfig(assistant="extractive", overseer="simulated")
    graph = build_interaction_graph(cfg, assistant=get_model("extractive"))
    for answer, stance in (("carbon", "correct"), ("helium", "incorrect")):
        state = asyncio.run(run_interaction(graph, Q, answer, PASSAGE, gold=answer == "carbon"))
        assert state["transcript"][0].text.endswith(f"STANCE: {stance}")


def test_no_passage_no_quote_and_it_cannot_judge() -> None:
    cfg = DebateConfig(protocol="sequential", rounds=1)
    graph = build_debate_graph(cfg, debater=get_model("extractive"), judge=get_model("scripted/judge"))
    state = asyncio.run(run_debate(graph, Q, "carbon", ""))
    assert all("no evidence" in t.text and not t.quotes for t in state["transcript"])
    reader = get_model("extractive")
    with pytest.raises(FatalModelError, match="cannot judge"):
        asyncio.run(reader.choice_probs([{"role": "user", "content": "Yes or No?"}], ["Yes", "No"]))
    with pytest.raises(FatalModelError, match="question_pattern"):
        asyncio.run(reader.generate([{"role": "user", "content": "hello"}], max_tokens=8))


def test_ranking_does_not_depend_on_the_hash_seed() -> None:
    """Tied sentences were once ordered by the last bit of a float sum taken in set order, so a
    SciQ label changed between processes (this row, under PYTHONHASHSEED=1)."""
    e = next(e for e in load("sciq", "test") if e.id == "d1caa3d987ff-9621a244a447")
    code = (
        "import json, sys; from agents.backends.extractive import rank, sentences, words; "
        "q, a, p = json.load(sys.stdin); print(repr(rank(sentences(p), words(q) + words(a))))"
    )
    payload = json.dumps([e.question, e.answer, e.support])
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            input=payload,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in range(6)
    }
    assert len(outs) == 1, outs


def test_the_reader_reads_every_paragraph_of_a_long_passage() -> None:
    """A passage of several paragraphs (QuALITY-style) is read to its end, not to its first line
    break, and the transcript that follows it is not taken for passage text."""

    cfg = DebateConfig(protocol="sequential", debater="extractive")
    passage = "Paris is big. It has a river.\n\nThe capital of Zed is Quux. Quux lies on a hill."
    prompt = cfg.prompts.debater.format(
        question="What is the capital of Zed?",
        answer="Quux",
        side_claim="correct",
        context_block=f"\nSource passage (hidden from the judge): {passage}",
        transcript="debater (argues the answer is incorrect): Zed has no capital at all.",
        round=1,
        rounds=1,
        word_limit=40,
    )
    reply = asyncio.run(get_model("extractive").generate(prompt)).text
    assert "<quote>The capital of Zed is Quux.</quote>" in reply and "no capital" not in reply


def reader(**options: object):
    return get_model(ModelSpec(name="extractive/graded", extractive=options))


def speak(model, answer: str, side: str, seed: int) -> str:
    cfg = DebateConfig(protocol="consultancy", consultant_side=side, rounds=1)  # type: ignore[arg-type]
    graph = build_debate_graph(
        cfg.model_copy(update={"seed": seed}), debater=model, judge=get_model("scripted/j")
    )
    return asyncio.run(run_debate(graph, Q, answer, PASSAGE))["transcript"][0]


def test_graded_readers_draw_per_seed_and_reproducibly() -> None:
    """recall, skill and honesty (issue 20): seeded draws, so the same call says the same thing."""
    weak = reader(recall=0.5, skill=0.5)
    said = {speak(weak, "carbon", "correct", seed).text for seed in range(12)}
    assert len(said) > 1  # the draws differ by seed...
    assert (
        speak(weak, "carbon", "correct", 3).text == speak(weak, "carbon", "correct", 3).text
    )  # ...reproducibly
    blind = speak(reader(recall=0.0), "carbon", "correct", 0)
    assert "found nothing" in blind.text and not blind.quotes
    liar = speak(reader(honesty=0.0), "carbon", "incorrect", 0)
    assert liar.quotes and not any(q.verified for q in liar.quotes)  # made up: the check catches it
    assert speak(reader(recall=1.0, skill=1.0, honesty=1.0), "carbon", "correct", 0).text == (
        speak(get_model("extractive"), "carbon", "correct", 0).text
    )  # the knobs at 1 are the plain reader


def judge_p(transcript: str, answer: str = "carbon") -> float:
    judge = reader(judge=True)
    prompt = f"Question: {Q}\nProposed answer: {answer}\nTranscript:\n{transcript}\nReply Yes or No."
    return asyncio.run(judge.choice_probs([{"role": "user", "content": prompt}], ["Yes", "No"])).probs["Yes"]


def test_the_quote_weighing_judge_trusts_checked_quotes_that_support_the_answer() -> None:
    a, b = (
        "[round 1] Debater A (argues the answer is correct):",
        "[round 1] Debater B (argues the answer is incorrect):",
    )
    support = f"{a} <v_quote>Carbon is present in all organic molecules</v_quote>"
    away = f"{b} <v_quote>all organic molecules have chains</v_quote>"
    forged = support.replace("v_quote", "u_quote")
    assert judge_p(support) > 0.9
    assert judge_p(forged) < 0.5 and judge_p(forged) == judge_p(
        "(no arguments)"
    )  # unverified counts for nothing
    assert judge_p(f"{support}\n{away}") < judge_p(support)  # evidence pointing away weighs against
    assert judge_p(away) < judge_p("(no arguments)")


def test_a_stronger_honest_debater_makes_the_quote_weighing_judge_more_accurate() -> None:
    """The offline skill axis: judge accuracy falls with the recall of the debater arguing the truth."""
    rows = [e for e in load("sciq", "test") if e.support][:40]
    judge = reader(judge=True)

    def accuracy(honest: object, liar: object) -> float:
        right = 0
        for e in rows:
            truth, lie = ("correct", "incorrect") if e.label else ("incorrect", "correct")
            cfg = DebateConfig(protocol="simultaneous", rounds=1, judge="j", debaters={truth: "h", lie: "l"})
            models = {f"debater_{truth}": honest, f"debater_{lie}": liar, "judge": judge}
            state = asyncio.run(run_debate(cfg.build(models), e.question, e.answer, e.support or ""))
            right += (state["verdict"].p_true > 0.5) == bool(e.label)
        return right / len(rows)

    strong, weak, liar = (
        get_model("extractive"),
        reader(recall=0.3, skill=0.5),
        reader(recall=0.3, honesty=0.5),
    )
    assert accuracy(strong, liar) > accuracy(weak, liar) + 0.15
