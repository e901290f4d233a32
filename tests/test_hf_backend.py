"""The hf backend: dynamic batching must not change outputs; scores match the model's logits."""

from __future__ import annotations

import asyncio

import pytest
import torch

from agents import GenerateParams, Message, wrap
from agents.backends.hf import HFBackend

PROMPTS = [
    "What is the capital of France?",
    "Name a planet.",
    "Why is the sky blue? Explain in detail please, with examples.",
    "hi",
    "What do plants need to grow?",
    "Which gas do humans exhale?",
    "Is the Earth flat?",
    "Count to five.",
    "What is the freezing point of water?",
    "Who wrote Hamlet?",
]


def msgs(p: str) -> list[Message]:
    return [Message(role="user", content=p)]


def reference_generate(b: HFBackend, prompt: str, max_new_tokens: int) -> str:
    """transformers' own greedy generate, one prompt, no padding."""
    ids = torch.tensor([b.encode(msgs(prompt))])
    out = b.model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=b.pad_id,
    )
    new = [t for t in out[0, ids.shape[1] :].tolist() if t not in b.eos_ids]
    return b.tokenizer.decode(new, skip_special_tokens=True)


async def check_batched_equals_sequential(b: HFBackend, prompts: list[str], max_tokens: int) -> None:
    params = GenerateParams(max_tokens=max_tokens)
    sequential = [await b.generate(msgs(p), params) for p in prompts]
    before = len(b.gen_batcher.batch_sizes)
    batched = await asyncio.gather(*[b.generate(msgs(p), params) for p in prompts])
    assert max(b.gen_batcher.batch_sizes[before:]) > 1, "concurrent calls were not batched"
    assert [c.text for c in batched] == [c.text for c in sequential]
    assert [c.usage for c in batched] == [c.usage for c in sequential]
    for p, c in zip(prompts[:3], sequential[:3], strict=True):
        assert c.text == reference_generate(b, p, max_tokens)


async def test_tiny_batched_generate_equals_one_at_a_time(tiny_hf: HFBackend) -> None:
    await check_batched_equals_sequential(tiny_hf, PROMPTS, 12)


async def test_tiny_batches_are_bounded(tiny_hf: HFBackend) -> None:
    before = len(tiny_hf.gen_batcher.batch_sizes)
    await asyncio.gather(*[tiny_hf.generate(msgs(f"p{i}"), GenerateParams(max_tokens=2)) for i in range(20)])
    sizes = tiny_hf.gen_batcher.batch_sizes[before:]
    assert sum(sizes) == 20 and max(sizes) <= tiny_hf.options.max_batch_size


async def test_tiny_mixed_params_in_one_batch(tiny_hf: HFBackend) -> None:
    p_short, p_long = GenerateParams(max_tokens=2), GenerateParams(max_tokens=9)
    alone = [
        await tiny_hf.generate(msgs(PROMPTS[0]), p_short),
        await tiny_hf.generate(msgs(PROMPTS[1]), p_long),
    ]
    together = await asyncio.gather(
        tiny_hf.generate(msgs(PROMPTS[0]), p_short), tiny_hf.generate(msgs(PROMPTS[1]), p_long)
    )
    assert [c.text for c in together] == [c.text for c in alone]
    assert together[0].usage.output_tokens <= 2 and together[0].finish_reason in ("length", "stop")
    assert together[1].usage.output_tokens <= 9


async def test_tiny_seeded_sample_is_independent_of_batch_mates(tiny_hf: HFBackend) -> None:
    params = GenerateParams(max_tokens=10, temperature=1.0, seed=42)
    alone = await tiny_hf.generate(msgs(PROMPTS[0]), params)
    crowd = await asyncio.gather(*[tiny_hf.generate(msgs(p), params) for p in PROMPTS[:6]])
    assert crowd[0].text == alone.text
    other = await tiny_hf.generate(msgs(PROMPTS[0]), params.model_copy(update={"seed": 43}))
    assert other.text != alone.text


async def test_tiny_stop_strings_cut_the_text(tiny_hf: HFBackend) -> None:
    full = await tiny_hf.generate(msgs(PROMPTS[2]), GenerateParams(max_tokens=16))
    assert len(full.text) > 4
    stop = full.text[3:5]
    cut = await tiny_hf.generate(msgs(PROMPTS[2]), GenerateParams(max_tokens=16, stop=[stop]))
    assert cut.finish_reason == "stop"
    assert stop not in cut.text and full.text.startswith(cut.text)


async def test_tiny_choice_probs_are_the_next_token_softmax(tiny_hf: HFBackend) -> None:
    b = tiny_hf
    cp = await b.choice_probs(msgs(PROMPTS[6]), ["Yes", "No"])
    ids = torch.tensor([b.encode(msgs(PROMPTS[6]))])
    with torch.no_grad():
        probs = torch.softmax(b.model(ids).logits[0, -1].float(), -1)
    yes, no = (b.tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in ("Yes", "No"))
    assert cp.method == "logits"
    assert cp["Yes"] == pytest.approx(float(probs[yes] / (probs[yes] + probs[no])), abs=1e-5)
    assert cp.mass == pytest.approx(float(probs[yes] + probs[no]), rel=1e-4)


async def test_tiny_multi_token_choices_are_scored_by_sequence_logprob(tiny_hf: HFBackend) -> None:
    b = tiny_hf
    choices = ["Paris", "The city of Berlin"]
    cp = await b.choice_probs(msgs(PROMPTS[0]), choices)
    prompt = b.encode(msgs(PROMPTS[0]))
    logps = []
    for c in choices:
        cids = b.tokenizer(c, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            lp = torch.log_softmax(b.model(torch.tensor([prompt + cids])).logits[0].float(), -1)
        logps.append(sum(float(lp[len(prompt) - 1 + j, t]) for j, t in enumerate(cids)))
    expected = torch.softmax(torch.tensor(logps), 0)
    assert cp[choices[0]] == pytest.approx(float(expected[0]), abs=1e-5)


async def test_tiny_batched_choice_probs_match_sequential(tiny_hf: HFBackend) -> None:
    seq = [await tiny_hf.choice_probs(msgs(p), ["Yes", "No"]) for p in PROMPTS]
    bat = await asyncio.gather(*[tiny_hf.choice_probs(msgs(p), ["Yes", "No"]) for p in PROMPTS])
    for s, t in zip(seq, bat, strict=True):
        assert t["Yes"] == pytest.approx(s["Yes"], abs=1e-5)


def test_pad_id_comes_from_the_tokenizer(tiny_hf: HFBackend) -> None:
    tok = tiny_hf.tokenizer
    expected = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    assert tiny_hf.pad_id == expected


@pytest.mark.slow
async def test_smollm2_batched_generate_equals_one_at_a_time(smollm2: HFBackend) -> None:
    await check_batched_equals_sequential(smollm2, PROMPTS[:6], 16)


@pytest.mark.slow
async def test_smollm2_answers_and_judges(smollm2: HFBackend) -> None:
    model = wrap(smollm2)
    c = await model.generate("What is the capital of France? Answer in one word.", max_tokens=8)
    assert "Paris" in c.text
    cp = await model.choice_probs("What is the capital of France? Answer in one word.", ["Paris", "London"])
    assert cp["Paris"] > 0.9


def test_unknown_hub_id_offline_gives_a_clear_error() -> None:
    from agents import FatalModelError, get_model

    with pytest.raises(FatalModelError, match="HF_HUB_OFFLINE=1 forbids downloads"):
        get_model("hf/no-such-org/no-such-model-xyz")


def test_unknown_embedded_model_lists_the_known_ones() -> None:
    from agents import FatalModelError, get_model

    with pytest.raises(FatalModelError, match="choose one of smollm2, tiny-gpt2"):
        get_model("embedded/llama-70b")
