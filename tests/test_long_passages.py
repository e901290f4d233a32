"""Long passages (QuALITY-sized, thousands of words) in debates and interaction: the prompt budget
(`max_context_tokens`, `on_long_context`) cuts the passage the speakers see at a sentence end or
fails the row with a clear message; quotes are checked against the passage as shown; the judge or
overseer never sees it, however long; and quote checking stays fast over long text."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from agents import get_model, wrap
from agents.backends.scripted import ScriptedBackend
from graphs import quotes
from graphs.batch import ROW_ERRORS
from graphs.debate import DebateConfig, build_debate_graph, debate_input, run_debate
from graphs.interaction import (
    InteractionConfig,
    build_interaction_graph,
    interaction_input,
    run_interaction,
)
from graphs.kinds import AnyGraph
from graphs.passage import TRUNCATED, PassageTooLong, estimate_tokens
from graphs.quotes import check_quotes, cut_at_sentence

ROOT = Path(__file__).resolve().parents[1]
Q = "Where did captain Morrow sail with the copper wire?"
A = "Lisbon"
EARLY = "Captain Morrow sailed to Lisbon with the copper wire and a letter for the governor."
LATE = "Much later the crew reached Valparaiso and sold the last crate of copper."
VOCAB = (
    "the river carried cold water past old mill while villagers argued about harvest ship would "
    "leave at dawn with three crates of wire and a letter nobody trusted new engineer because she "
    "measured everything twice lamp tower storm bridge market"
)
BUDGET = 500  # tokens: 2,000 characters, a few dozen sentences of the passage


def long_passage(n_words: int = 6000, seed: int = 0) -> tuple[list[str], str]:
    """Sentences of generated prose (about `n_words` words, one paragraph) and the passage: the
    answer's sentence near the start, a telling one near the end (beyond any cut)."""
    rng = random.Random(seed)
    vocab = VOCAB.split(" ")
    sents, total = [], 0
    while total < n_words:
        words = [rng.choice(vocab) for _ in range(rng.randint(6, 20))]
        sents.append(" ".join(words).capitalize() + rng.choice(".!?"))
        total += len(words)
    sents[2:2] = [EARLY]
    sents[-3:-3] = [LATE]
    return sents, " ".join(sents)


SENTS, PASSAGE = long_passage()


def recorder(reply: str = "The passage settles it.") -> ScriptedBackend:
    """A scripted model that answers every prompt the same (Yes/No even) and keeps what it saw."""
    return ScriptedBackend(
        "scripted/rec",
        reply_fn=lambda m, p: reply,
        probs_fn=lambda m, c: {c[0]: 0.6, c[1]: 0.4},
    )


def prompts(model: ScriptedBackend) -> list[str]:
    return [msgs[-1].content for _, msgs in model.calls]


QUOTED = re.compile(r"<(quote|[uv]_quote)>.*?</\1>", re.S)


def leaked(prompt: str, sents: Sequence[str] = SENTS) -> list[str]:
    """Passage sentences a prompt holds outside the quotes a speaker made (a quote is what the
    protocol means to show the judge)."""
    rest = QUOTED.sub(" ", prompt)
    return [s for s in sents if s in rest]


def shown_sentences(prompt: str) -> list[str]:
    return [s for s in SENTS if s in prompt]


# --- the budget and the cut ------------------------------------------------------------------


def test_the_defaults_show_the_whole_passage() -> None:
    for cfg in (DebateConfig(), InteractionConfig()):
        assert cfg.max_context_tokens is None and cfg.on_long_context == "truncate"
        assert cfg.passage(PASSAGE) is PASSAGE and cfg.shown_passage(PASSAGE) is PASSAGE


def test_the_budget_fields_validate_on_both_kinds() -> None:
    for kind in ("debate", "interaction"):
        spec = TypeAdapter(AnyGraph).validate_python(
            {"kind": kind, "max_context_tokens": 300, "on_long_context": "error"}
        )
        assert spec.max_context_tokens == 300 and spec.on_long_context == "error"
        for bad in ({"max_context_tokens": 0}, {"on_long_context": "drop"}):
            with pytest.raises(ValidationError):
                TypeAdapter(AnyGraph).validate_python({"kind": kind, **bad})
    assert "4 characters a token" in DebateConfig.model_fields["max_context_tokens"].description  # type: ignore[operator]


def test_truncate_keeps_the_beginning_up_to_a_sentence_end_within_the_budget() -> None:
    cfg = DebateConfig(max_context_tokens=BUDGET)
    cut, shown = cfg.passage(PASSAGE), cfg.shown_passage(PASSAGE)
    assert shown == cut + TRUNCATED and len(shown) <= 4 * BUDGET and estimate_tokens(shown) <= BUDGET
    assert PASSAGE.startswith(cut) and cut[-1] in ".!?" and PASSAGE[len(cut)] == " "
    # Whole sentences, as many as fit: the next one would not.
    n = len(shown_sentences(cut))
    assert cut == " ".join(SENTS[:n]) and len(" ".join(SENTS[: n + 1])) + len(TRUNCATED) > 4 * BUDGET
    assert EARLY in cut and LATE not in cut
    # A passage within the budget is left as it is, marker and all.
    short = " ".join(SENTS[:3])
    assert cfg.shown_passage(short) == short


def test_the_cut_follows_the_verifiers_sentence_rule() -> None:
    text = "Dr. Smith weighed 3.5 g of it. Then e.g. Water came.\nA heading\nAnother line here."
    assert cut_at_sentence(text, 40) == "Dr. Smith weighed 3.5 g of it."  # not at "Dr." or "3."
    assert cut_at_sentence(text, 62) == "Dr. Smith weighed 3.5 g of it. Then e.g. Water came.\nA heading"
    # No sentence end that early: whole words; a single longer word: the characters.
    assert cut_at_sentence("one two three four five six", 14) == "one two three"
    assert cut_at_sentence("abcdefghij", 4) == "abcd"
    assert cut_at_sentence(text, len(text)) == text


def test_on_long_context_error_names_the_length_and_the_budget() -> None:
    cfg = InteractionConfig(max_context_tokens=BUDGET, on_long_context="error")
    with pytest.raises(PassageTooLong) as err:
        cfg.passage(PASSAGE)
    msg = str(err.value)
    assert f"{len(PASSAGE):,} characters" in msg and f"{estimate_tokens(PASSAGE):,} tokens" in msg
    assert f"max_context_tokens: {BUDGET}" in msg and "on_long_context: error" in msg
    assert isinstance(err.value, ROW_ERRORS)  # a row failure, not a crashed run
    assert cfg.passage(" ".join(SENTS[:3])) == " ".join(SENTS[:3])


# --- quotes against the passage as shown ---------------------------------------------------------


def test_a_quote_from_beyond_the_cut_is_unverified() -> None:
    turn = f"See <quote>{EARLY}</quote> and <quote>{LATE}</quote>"
    debater = ScriptedBackend("scripted/d", reply_fn=lambda m, p: turn)
    for budget, want in ((None, [True, True]), (BUDGET, [True, False])):
        judge = recorder()
        cfg = DebateConfig(protocol="consultancy", rounds=1, max_tokens=200, max_context_tokens=budget)
        graph = build_debate_graph(cfg, debater=wrap(debater), judge=wrap(judge))
        state = asyncio.run(run_debate(graph, Q, A, PASSAGE))
        assert [q.verified for q in state["transcript"][0].quotes] == want
        tag = "v_quote" if want[1] else "u_quote"
        assert f"<{tag}>{LATE}</{tag}>" in prompts(judge)[-1]


def test_a_passage_shown_to_no_one_is_neither_cut_nor_refused() -> None:
    """The budget is a prompt budget: with no prompt holding the passage, it does not apply."""
    turn = f"<quote>{LATE}</quote>"
    unseen = {"max_context_tokens": BUDGET, "on_long_context": "error", "debaters_see_context": False}
    cfg = DebateConfig(protocol="consultancy", rounds=1, max_tokens=200, **unseen)  # type: ignore[arg-type]
    debater = ScriptedBackend("scripted/d", reply_fn=lambda m, p: turn)
    graph = build_debate_graph(cfg, debater=wrap(debater), judge=wrap(recorder()))
    state = asyncio.run(run_debate(graph, Q, A, PASSAGE))
    assert state["transcript"][0].quotes[0].verified and leaked(prompts(debater)[0]) == []
    blind = DebateConfig(protocol="blind", max_context_tokens=BUDGET, on_long_context="error")
    state = asyncio.run(run_debate(build_debate_graph(blind, judge=wrap(recorder())), Q, A, PASSAGE))
    assert "verdict" in state


# --- the judge never sees the passage --------------------------------------------------------------


def speaker_checks(prompt: str, cfg: Any) -> None:
    """The speaker got the passage within the budget: the cut, whole, and nothing after it."""
    shown = cfg.shown_passage(PASSAGE)
    assert shown in prompt and len(shown) <= 4 * BUDGET
    assert shown_sentences(prompt) == shown_sentences(cfg.passage(PASSAGE)) and LATE not in prompt


@pytest.mark.parametrize(
    "fields",
    [
        {"protocol": "sequential", "rounds": 2, "interactive_judge": True},
        {"protocol": "simultaneous", "rounds": 1, "position_swap": True},
        {"protocol": "consultancy", "rounds": 2},
        {"protocol": "n_agent", "rounds": 1, "n_agents": 2},
        {"protocol": "blind"},
    ],
    ids=lambda f: f["protocol"],
)
def test_the_debate_judge_never_sees_a_long_passage(fields: dict[str, Any]) -> None:
    cfg = DebateConfig(**fields, max_context_tokens=BUDGET)
    debater, judge = recorder(), recorder("Why?")
    graph = build_debate_graph(cfg, debater=wrap(debater), judge=wrap(judge))
    state = asyncio.run(run_debate(graph, Q, A, PASSAGE))
    assert 0 <= state["verdict"].p_true <= 1
    assert judge.calls and all(leaked(p) == [] for p in prompts(judge))
    if cfg.protocol != "blind":
        assert debater.calls
        for p in prompts(debater):
            speaker_checks(p, cfg)


def test_the_interaction_overseer_never_sees_a_long_passage() -> None:
    cfg = InteractionConfig(max_followups=2, max_context_tokens=BUDGET)
    assistant, overseer = recorder(), recorder("What does the passage say about Lisbon?")
    graph = build_interaction_graph(cfg, assistant=wrap(assistant), overseer=wrap(overseer))
    state = asyncio.run(run_interaction(graph, Q, A, PASSAGE))
    assert state["verdict"].judge == "scripted/rec"
    assert len(overseer.calls) == 3 and all(leaked(p) == [] for p in prompts(overseer))
    assert len(assistant.calls) == 3
    for p in prompts(assistant):
        speaker_checks(p, cfg)


def test_a_judge_allowed_the_passage_gets_it_within_the_budget_too() -> None:
    cfg = DebateConfig(protocol="blind", judge_sees_context=True, max_context_tokens=BUDGET)
    judge = recorder()
    asyncio.run(run_debate(build_debate_graph(cfg, judge=wrap(judge)), Q, A, PASSAGE))
    speaker_checks(prompts(judge)[0], cfg)
    assert EARLY in leaked(prompts(judge)[0])  # the leak check sees a shown passage


def test_the_extractive_reader_argues_from_the_shown_passage_and_the_judge_sees_only_its_quotes() -> None:
    """The offline strong agent on a long passage: it quotes what it was shown (so its quotes
    verify, none from beyond the cut), and the judge reads those quotes and no other passage text."""
    cfg = DebateConfig(protocol="sequential", rounds=2, max_tokens=200, max_context_tokens=BUDGET)
    judge = recorder()
    graph = build_debate_graph(cfg, debater=get_model("extractive"), judge=wrap(judge))
    state = asyncio.run(run_debate(graph, Q, A, PASSAGE))
    turns = state["transcript"]
    assert len(turns) == 4 and all(t.quotes and all(q.verified for q in t.quotes) for t in turns)
    assert any(EARLY.startswith(q.text) for t in turns for q in t.quotes)  # the answer's sentence
    cut = cfg.passage(PASSAGE)
    assert all(q.text in cut for t in turns for q in t.quotes)
    (shown,) = prompts(judge)
    assert "<v_quote>" in shown and leaked(shown) == []

    icfg = InteractionConfig(max_context_tokens=BUDGET)
    overseer = recorder()
    igraph = build_interaction_graph(icfg, assistant=get_model("extractive"), overseer=wrap(overseer))
    istate = asyncio.run(run_interaction(igraph, Q, A, PASSAGE))
    (brief,) = istate["transcript"]
    assert "STANCE: correct" in brief.text and EARLY in brief.text and LATE not in brief.text
    (seen,) = prompts(overseer)
    assert leaked(seen) == [] and EARLY in seen  # quoted by the assistant, as the protocol allows


# --- on_long_context: error fails the row ----------------------------------------------------------


SHORT = " ".join(SENTS[:3])


def test_an_over_long_row_fails_and_the_others_go_on_in_a_batched_graph() -> None:
    judge_debate = DebateConfig(
        protocol="simultaneous", rounds=1, max_context_tokens=BUDGET, on_long_context="error"
    )
    graph = build_debate_graph(judge_debate, debater=wrap(recorder()), judge=wrap(recorder()), batched=True)
    rows = [debate_input(Q, A, PASSAGE), debate_input(Q, A, SHORT)]
    long_row, short_row = asyncio.run(graph.ainvoke({"rows": rows}))["rows"]
    assert long_row["error"].startswith("PassageTooLong: the passage is ") and "verdict" not in long_row
    assert f"max_context_tokens: {BUDGET}" in long_row["error"] and "verdict" in short_row

    icfg = InteractionConfig(max_context_tokens=BUDGET, on_long_context="error")
    igraph = build_interaction_graph(
        icfg, assistant=wrap(recorder()), overseer=wrap(recorder()), batched=True
    )
    irows = [interaction_input(Q, A, SHORT), interaction_input(Q, A, PASSAGE)]
    ishort, ilong = asyncio.run(igraph.ainvoke({"rows": irows}))["rows"]
    assert "verdict" in ishort and ilong["error"].startswith("PassageTooLong: ")
    # One row per graph run: the error reaches the caller, which records it (oversight.labelling.label).
    with pytest.raises(PassageTooLong, match="over max_context_tokens"):
        asyncio.run(
            run_debate(
                build_debate_graph(judge_debate, debater=wrap(recorder()), judge=wrap(recorder())),
                Q,
                A,
                PASSAGE,
            )
        )


@pytest.mark.parametrize("rows_per_graph", [1, 2])
def test_a_labelling_run_stores_the_over_long_row_as_failed(tmp_path: Path, rows_per_graph: int) -> None:
    from oversight.labelling.label import LabelConfig, label
    from oversight.labelling.store import LabelStore
    from w2sg.data import make_example

    cfg = LabelConfig.model_validate(
        {
            "models": {"deb": {"name": "scripted/deb"}, "judge": {"name": "scripted/judge"}},
            "graph": {
                "kind": "debate",
                "protocol": "consultancy",
                "rounds": 1,
                "debater": "deb",
                "judge": "judge",
                "max_context_tokens": BUDGET,
                "on_long_context": "error",
            },
            "concurrency": 2,
            "rows_per_graph": rows_per_graph,
            "store": str(tmp_path / "labels.sqlite"),
        }
    )
    rows = [
        make_example(Q, A, 1, support=PASSAGE),
        make_example(Q, "Valparaiso", 0, support=SHORT),
    ]
    run = asyncio.run(label(cfg, rows=rows))
    assert (run.total, run.labelled, run.failed) == (2, 1, 1)
    store = LabelStore(cfg.store)
    got = {r.example_id: r for r in store.rows(run.protocol, run.config_hash)}
    store.close()
    bad, ok = got[rows[0].id], got[rows[1].id]
    assert bad.status == "failed" and bad.error is not None and ok.status == "ok"
    assert (
        bad.error.startswith("PassageTooLong: the passage is ")
        and f"{len(PASSAGE):,} characters" in bad.error
    )


# --- quote checking over long text -----------------------------------------------------------------


def reference(quote: str, context: str) -> bool:
    """The verifier's rule written plainly: every start position, word lists compared."""
    words, breaks = quotes._words_and_breaks(quote)
    ctx: list[str] = []
    ends, at = set(), 0
    for m in quotes._passage_ends(context):
        ctx += quotes._norm(context[at : m.start()])
        ends.add(len(ctx))
        at = m.end()
    ctx += quotes._norm(context[at:])
    n = len(words)
    return n >= quotes.MIN_WORDS and any(
        ctx[s : s + n] == words and all(b - s in breaks for b in ends if s < b < s + n)
        for s in range(len(ctx) - n + 1)
    )


def test_the_indexed_search_verifies_exactly_as_the_plain_rule() -> None:
    rng = random.Random(3)
    paragraphs = PASSAGE.replace("! ", "!\n", 40) + " Dr. Hale, e.g. Water, weighed 3.5 kg (pl. lots)."
    cases = []
    for _ in range(300):
        i = rng.randrange(len(paragraphs))
        q = paragraphs[i : i + rng.randint(5, 120)]
        if rng.random() < 0.7:
            q = " ".join(q.split(" ")[1:-1])  # whole words
        if rng.random() < 0.3:
            q = q.replace(". ", " ", 1)  # a sentence end dropped
        cases.append(q.replace("<", ""))
    cases += ["dr hale e g water", "weighed 3.5 kg pl", "Weighed 3 5 KG (pl. lots)"]
    text = " ".join(f"<quote>{q}</quote>" for q in cases)
    got = [x.verified for x in check_quotes(text, paragraphs)]
    want = [reference(q, paragraphs) for q in cases]
    assert got == want and 50 < sum(got) < len(got)


def test_a_changed_passage_is_not_served_an_old_index() -> None:
    quote = f"<quote>{EARLY}</quote>"
    assert check_quotes(quote, PASSAGE)[0].verified
    assert not check_quotes(quote, PASSAGE.replace("Lisbon", "Porto"))[0].verified
    assert check_quotes("no quotes here", PASSAGE) == ()


def test_bench_quotes_quick() -> None:
    out = subprocess.run(
        [sys.executable, "benchmarks/bench_quotes.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    ratios = [float(x) for x in re.findall(r"ratio ours/baseline \((?:cold|warm)\) = ([0-9.]+)x", out.stdout)]
    assert len(ratios) == 2 and all(r > 0 for r in ratios), out.stdout
