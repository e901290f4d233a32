"""The scripted backend answers from rules, a recorded table or a function, deterministically."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents import FatalModelError, ScriptedOptions, ScriptedRule, get_model, wrap
from agents.backends.scripted import ScriptedBackend


async def test_rules_match_in_order() -> None:
    model = get_model(
        "scripted/judge",
        scripted={
            "rules": [
                {"match": "carbon", "reply": "Yes, carbon.", "probs": {"Yes": 0.8, "No": 0.2}},
                {"match": ".*", "reply": "No."},
            ]
        },
    )
    assert (await model.generate("Answer: carbon")).text == "Yes, carbon."
    assert (await model.generate("Answer: neon")).text == "No."
    assert (await model.choice_probs("Answer: carbon", ["Yes", "No"])).probs == {"Yes": 0.8, "No": 0.2}
    # Without probs, the choice the reply starts with gets all the mass.
    assert (await model.choice_probs("Answer: neon", ["Yes", "No"])).probs == {"Yes": 0.0, "No": 1.0}


async def test_replies_are_picked_by_seed() -> None:
    model = get_model("scripted", scripted={"rules": [{"replies": [f"r{i}" for i in range(10)]}]})
    a = [(await model.generate("q", temperature=1.0, seed=s)).text for s in range(20)]
    b = [(await model.generate("q", temperature=1.0, seed=s)).text for s in range(20)]
    assert a == b and len(set(a)) > 3


async def test_recorded_table(tmp_path: Path) -> None:
    table = tmp_path / "table.jsonl"
    table.write_text('{"prompt": "2+2?", "reply": "4", "probs": {"4": 0.9, "5": 0.1}}\n\n')
    model = get_model("scripted", scripted={"table": table})
    assert (await model.generate("2+2?")).text == "4"
    assert (await model.choice_probs("2+2?", ["4", "5"]))["4"] == pytest.approx(0.9)


def test_bad_table_row_names_file_and_line(tmp_path: Path) -> None:
    table = tmp_path / "table.jsonl"
    table.write_text('{"prompt": "a", "reply": "b"}\n{"reply": "no prompt"}\n')
    with pytest.raises(FatalModelError, match=r"table\.jsonl:2: expected a JSON object with a 'prompt'"):
        get_model("scripted", scripted={"table": table})


async def test_function_backend_sees_messages_and_params() -> None:
    seen = []

    def reply(messages, params):  # type: ignore[no-untyped-def]
        seen.append((messages[-1].content, params.max_tokens))
        return messages[-1].content.upper()

    model = wrap(ScriptedBackend("scripted/fn", reply_fn=reply))
    c = await model.generate("shout this", max_tokens=7)
    assert c.text == "SHOUT THIS" and seen == [("shout this", 7)]


async def test_stop_and_max_tokens_apply() -> None:
    model = wrap(
        ScriptedBackend("scripted", ScriptedOptions(rules=[ScriptedRule(reply="one two three. four five")]))
    )
    assert (await model.generate("q", stop=["."])).text == "one two three"
    c = await model.generate("q", max_tokens=2)
    assert c.text == "one two" and c.finish_reason == "length"


def test_rule_without_answer_is_rejected() -> None:
    with pytest.raises(ValueError, match="needs `reply`, `replies` or `probs`"):
        ScriptedRule(match="x")
