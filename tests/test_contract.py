"""One contract, every backend: scripted, tiny HF (random-weight GPT-2), OpenAI-compatible server."""

from __future__ import annotations

import asyncio

import pytest

from agents import Completion, Model, ScriptedOptions, ScriptedRule, get_model, wrap
from agents.backends.scripted import ScriptedBackend

PROMPTS = [
    "Is the sky blue?",
    "What is the boiling point of water at sea level, in degrees Celsius?",
    "Name the process by which plants make food from light.",
    "Yes or no: do magnets attract copper?",
]


@pytest.fixture(params=["scripted", "hf", "openai"])
def model(request, server, tiny_hf) -> Model:  # type: ignore[no-untyped-def]
    if request.param == "scripted":
        opts = ScriptedOptions(
            rules=[
                ScriptedRule(match="sky", replies=["Yes it is", "No it is not", "Maybe"]),
                ScriptedRule(match=".*", reply="A scripted answer that is long enough"),
            ]
        )
        return wrap(ScriptedBackend("scripted/contract", opts))
    if request.param == "hf":
        return wrap(tiny_hf)
    return get_model(f"openai/fake@{server.url}")


async def test_generate_returns_a_complete_record(model: Model) -> None:
    c = await model.generate(PROMPTS[1], max_tokens=8)
    assert isinstance(c, Completion)
    assert isinstance(c.text, str)
    assert 0 < c.usage.output_tokens <= 8
    assert c.usage.input_tokens > 0
    assert c.seconds > 0
    assert c.finish_reason in ("stop", "length")
    assert c.model == model.name
    assert model.usage.calls == 1
    assert model.usage.output_tokens == c.usage.output_tokens


async def test_max_tokens_bounds_output(model: Model) -> None:
    c = await model.generate(PROMPTS[2], max_tokens=3)
    assert c.usage.output_tokens <= 3


async def test_greedy_is_deterministic_and_order_free(model: Model) -> None:
    sequential = [(await model.generate(p, max_tokens=6)).text for p in PROMPTS]
    concurrent = await asyncio.gather(*[model.generate(p, max_tokens=6) for p in PROMPTS])
    assert [c.text for c in concurrent] == sequential


async def test_seeded_sampling_reproduces(model: Model) -> None:
    a = await asyncio.gather(
        *[model.generate(PROMPTS[0], max_tokens=6, temperature=1.0, seed=s) for s in range(6)]
    )
    b = await asyncio.gather(
        *[model.generate(PROMPTS[0], max_tokens=6, temperature=1.0, seed=s) for s in range(6)]
    )
    assert [c.text for c in a] == [c.text for c in b]
    assert len({c.text for c in a}) > 1, "different seeds should not all give the same sample"


async def test_choice_probs_is_a_distribution_over_the_choices(model: Model) -> None:
    for p in PROMPTS:
        cp = await model.choice_probs(p, ["Yes", "No"])
        assert list(cp.probs) == ["Yes", "No"]
        assert all(0.0 <= v <= 1.0 for v in cp.probs.values())
        assert sum(cp.probs.values()) == pytest.approx(1.0)
        assert cp.method in ("logits", "logprobs", "scripted")
        assert cp["Yes"] == cp.probs["Yes"]


async def test_choice_probs_rejects_bad_choices(model: Model) -> None:
    with pytest.raises(ValueError, match="at least two"):
        await model.choice_probs(PROMPTS[0], ["Yes"])
    with pytest.raises(ValueError, match="distinct"):
        await model.choice_probs(PROMPTS[0], ["Yes", "Yes"])


async def test_model_survives_a_new_event_loop(model: Model) -> None:
    # Models are long-lived; scripts call asyncio.run more than once.
    first = (await model.generate(PROMPTS[3], max_tokens=4)).text

    def in_fresh_loop() -> str:
        return asyncio.run(model.generate(PROMPTS[3], max_tokens=4)).text

    assert await asyncio.to_thread(in_fresh_loop) == first


def test_one_provider_registry_serves_validation_and_construction() -> None:
    """A provider added through `register_provider` is a valid model-string prefix, builds its
    backend in `get_model`, and owns exactly the options section it declares."""
    import pytest
    from pydantic import ValidationError

    from agents import PROVIDERS, ModelSpec, get_model, register_provider
    from agents.backends.scripted import ScriptedBackend

    with pytest.raises(ValidationError, match="unknown provider 'echo-test'"):
        ModelSpec(name="echo-test/x")
    register_provider("echo-test", lambda spec: ScriptedBackend(spec.name), options="scripted")
    try:
        assert get_model("echo-test/x").name == "echo-test/x"
        ModelSpec(name="echo-test/x", scripted={"default_reply": "hi"})  # its own section: fine
        with pytest.raises(ValidationError, match="options `hf` do not apply to a echo-test model"):
            ModelSpec(name="echo-test/x", hf={})
        with pytest.raises(ValueError, match="without '/'"):
            register_provider("a/b", lambda spec: ScriptedBackend(spec.name))
    finally:
        del PROVIDERS["echo-test"]
    assert set(PROVIDERS) >= {"hf", "embedded", "openai", "scripted", "classifier", "extractive"}
