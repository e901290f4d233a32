"""Every protocol kind in the registry keeps the `GraphSpec` contract the rest of the tool relies on
(labelling, judge training, the end-to-end run and the model check talk only to it), and nothing
outside `graphs/` asks which kind a graph is."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from agents import wrap
from agents.backends.classifier import PAIR_SEP
from agents.backends.scripted import ScriptedBackend
from graphs.invoke import invoke_once
from graphs.kinds import KINDS, AnyGraph
from graphs.spec import GraphSpec
from w2sg.data import Example

ROOT = Path(__file__).resolve().parents[1]
ROW = Example(
    id="q1-0",
    qid="q1",
    question="What element is present in all organic molecules?",
    answer="carbon",
    label=1,
    support="All organic molecules contain carbon. Oxygen is common but not universal.",
)


def scripted(name: str) -> object:
    def probs(messages: object, choices: list[str]) -> dict[str, float]:
        return {c: 0.8 if i == 0 else 0.2 / max(1, len(choices) - 1) for i, c in enumerate(choices)}

    return wrap(ScriptedBackend(f"scripted/{name}", probs_fn=probs))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_keeps_the_spec_contract(kind: str) -> None:
    cls = KINDS[kind]
    spec = TypeAdapter(AnyGraph).validate_python({"kind": kind})
    assert type(spec) is cls and isinstance(spec, GraphSpec) and spec.kind == kind
    assert {cls.SPEAKER, cls.JUDGE} <= set(cls.ROLE_FIELDS)
    roles = spec.roles()
    assert set(roles) <= set(cls.ROLE_FIELDS) and spec.judge_model == roles.get(cls.JUDGE)
    assert spec.model_refs() == {cls.ROLE_FIELDS[r]: (n, "name") for r, n in roles.items()}
    # Built from models by role, a row's start state runs to a verdict.
    models = {role: scripted(role) for role in roles}
    state = asyncio.run(invoke_once(spec.build(models), spec.start(ROW), None))  # type: ignore[arg-type]
    assert 0.0 <= state["verdict"].p_true <= 1.0
    # What a trained judge of this kind reads: text pairs it can be trained on.
    texts = spec.judge_texts(state, PAIR_SEP)
    assert texts and all(PAIR_SEP in t and ROW.question in t for _, t in texts)
    assert len({suffix for suffix, _ in texts}) == len(texts)
    # The copy with a trained judge names it in the judge's field, validated again.
    trained = spec.with_judge("classifier/some-judge")
    assert trained.judge_model == "classifier/some-judge" and trained.judge_kind == "trained"
    assert trained.protocol_name == spec.protocol_name and spec.judge_kind == "prompted"


def test_with_judge_validates_the_copy() -> None:
    asks = KINDS["interaction"].model_validate({"max_followups": 1})
    with pytest.raises(ValidationError, match="cannot ask follow-ups"):
        asks.with_judge("classifier/j")
    interactive = KINDS["debate"].model_validate({"interactive_judge": True})
    with pytest.raises(ValidationError, match="needs a prompted judge"):
        interactive.with_judge("classifier/j")


def test_a_graph_without_a_known_kind_is_refused_naming_the_kinds() -> None:
    adapter = TypeAdapter(AnyGraph)
    for bad in ({"protocol": "blind"}, {"kind": "tournament"}):
        with pytest.raises(ValidationError, match=re.escape(f"one of {', '.join(KINDS)}")):
            adapter.validate_python(bad)


def test_only_graphs_knows_the_kinds() -> None:
    """Outside `graphs/`, no module tests which kind a graph is; the commands that run one kind
    on purpose (`w2sg debate`, `w2sg interact`, the human queue, `w2sg tournament`'s cross-play
    debates, `w2sg debaters train`'s debates) are the exceptions."""
    on_purpose = {
        "oversight/cli/graphs.py",
        "oversight/labelling/human.py",
        "oversight/experiments/tournament/config.py",
        "oversight/experiments/debaters/config.py",
        "oversight/experiments/debaters/runner.py",
    }
    kind_test = re.compile(r"isinstance\([^)]*(DebateConfig|InteractionConfig)|\.protocol ==|\.overseer ==")
    found = [
        f"{p.relative_to(ROOT)}:{i}"
        for pkg in ("oversight", "w2sg", "agents")
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if str(p.relative_to(ROOT)) not in on_purpose
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if kind_test.search(line) or re.search(r"\b(DebateConfig|InteractionConfig)\b", line)
    ]
    assert not found, found


WITH_PASSAGE = [
    *({"kind": "debate", "protocol": p} for p in ("simultaneous", "sequential", "consultancy", "n_agent")),
    {"kind": "debate", "protocol": "blind", "judge_sees_context": True},
    {"kind": "interaction"},
    {"kind": "interaction", "overseer": "simulated", "overseer_sees_context": True},
]


def shown_prompts(spec: GraphSpec, row: Example) -> tuple[list[str], dict]:
    """Every prompt a run of `spec` on `row` showed a model, and its final state. The speakers
    quote the row's first passage sentence (so quote checking has something to check)."""
    quote = "<quote>All organic molecules contain carbon.</quote> STANCE: correct"
    backends = {r: ScriptedBackend(f"scripted/{r}", reply_fn=lambda m, p: quote) for r in spec.roles()}
    models = {role: wrap(b) for role, b in backends.items()}  # type: ignore[arg-type]
    state = asyncio.run(invoke_once(spec.build(models), spec.start(row), None))  # type: ignore[arg-type]
    return [m.content for b in backends.values() for _, msgs in b.calls for m in msgs], state


@pytest.mark.parametrize("settings", WITH_PASSAGE, ids=lambda s: "-".join(map(str, s.values())))
def test_a_graph_that_needs_no_passage_never_uses_one(settings: dict) -> None:
    """`passage_settings` names every setting that shows the passage or checks quotes against it:
    with them off, the passage reaches no prompt, no quote is checked, and a row without a passage
    runs to a verdict. With them on, the passage does reach a model (the check can fail)."""
    spec = TypeAdapter(AnyGraph).validate_python(settings)
    assert spec.needs_passage and spec.passage_settings()
    unseen = "Oxygen is common but not universal."  # the passage's second sentence: never quoted
    prompts, state = shown_prompts(spec, ROW)
    assert any(unseen in p for p in prompts)
    off = type(spec).model_validate({**spec.model_dump(), **dict.fromkeys(spec.passage_settings(), False)})
    assert not off.needs_passage and off.passage_settings() == []
    prompts, state = shown_prompts(off, ROW)
    assert prompts and not any(unseen in p for p in prompts)
    assert all(not t.quotes for t in state["transcript"]) and 0 <= state["verdict"].p_true <= 1
    bare, _ = shown_prompts(off, ROW.model_copy(update={"support": None}))
    assert bare == prompts  # without its passage, the row is shown exactly as before


def test_which_graphs_need_a_passage() -> None:
    adapter = TypeAdapter(AnyGraph)

    def needs(**settings: object) -> list[str]:
        return adapter.validate_python(settings).passage_settings()

    assert needs(kind="debate", protocol="blind") == []  # a blind judge reads no passage
    assert needs(kind="debate", protocol="consultancy") == ["debaters_see_context", "verify_quotes"]
    assert needs(kind="debate", debaters_see_context=False) == ["verify_quotes"]  # quotes still checked
    assert needs(kind="debate", debaters_see_context=False, verify_quotes=False) == []
    assert needs(kind="interaction") == ["assistant_sees_context"]
    assert needs(kind="interaction", assistant_sees_context=False) == []


def test_a_kind_that_forgets_a_required_member_fails_when_its_class_is_made() -> None:
    """GraphSpec's required members are abstract: a new kind without one is a TypeError at import
    (class creation), naming what it lacks, not an error at its first run."""
    from typing import ClassVar, Literal

    from graphs.spec import GraphSpec

    with pytest.raises(TypeError, match=r"Half does not define build, judge_texts, SPEAKER"):

        class Half(GraphSpec):
            kind: Literal["half"] = "half"
            ROLE_FIELDS: ClassVar[dict[str, str]] = {"judge": "judge"}
            JUDGE: ClassVar[str] = "judge"

            def passage_settings(self) -> list[str]:
                return []

            def start(self, item: object) -> dict:
                return {}

    assert all(not getattr(cls, "__abstractmethods__", ()) for cls in KINDS.values())
