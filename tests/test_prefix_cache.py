"""Prompt-prefix reuse in the hf backend: same token ids and scores as without it, bounded memory."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from agents import GenerateParams, Message
from agents.backends.hf import HFBackend, _Gen, load_hf
from agents.backends.prefix_cache import PrefixCache, group_by_length, shared_in_batch
from agents.config import HFOptions, ModelSpec, spec_identity
from w2sg.identity import left_out, run_id

PASSAGE = (
    "Source passage: The spokes of Saturn's rings appear seasonally and their origin is as yet "
    "unknown. Saturn has a prominent ring system made of ice particles with some rocky debris. "
)


def debate_prompts(round_text: str = "(nothing yet)") -> list[list[Message]]:
    """Two questions x two sides: the sides of a question share its question and passage."""
    out = []
    for q in ("What structures show spokes?", "What are the rings made of?"):
        for side in ("correct", "incorrect"):
            body = f"Question: {q}\n{PASSAGE}\nDebate so far:\n{round_text}\nArgue the answer is {side}."
            out.append([Message(role="user", content=body)])
    return out


def load_tiny(cap: int) -> HFBackend:
    return load_hf("embedded/tiny-gpt2", HFOptions(device="cpu", batch_wait_ms=20, prefix_cache_tokens=cap))


@pytest.fixture(scope="module")
def plain() -> Iterator[HFBackend]:
    yield load_tiny(0)


def generate_ids(b: HFBackend, prompts: list[list[Message]], params: GenerateParams) -> list[list[int]]:
    return [o.ids for o in b._generate_batch([_Gen(p, params) for p in prompts])]


PARAMS = [
    GenerateParams(max_tokens=12),
    GenerateParams(max_tokens=12, temperature=1.0, seed=7),
    GenerateParams(max_tokens=12, temperature=0.7, top_p=0.9, seed=3),
]


@pytest.mark.parametrize("params", PARAMS, ids=["greedy", "seeded", "top_p"])
def test_reused_prefixes_give_the_same_token_ids(plain: HFBackend, params: GenerateParams) -> None:
    cached = load_tiny(16384)
    first, second = debate_prompts(), debate_prompts("[round 1] A: rings. B: moons.")
    assert generate_ids(cached, first, params) == generate_ids(plain, first, params)
    within = cached.stats.reused_tokens
    assert within > 0, "the two sides of a question share a prefix within the batch"
    # The next round's prompts extend this round's past the passage: most of them is reused.
    assert generate_ids(cached, second, params) == generate_ids(plain, second, params)
    reused = cached.stats.reused_tokens - within
    assert reused > 0.6 * sum(len(cached.encode(p)) for p in second)
    # The same prompt again (best-of-N): all but its last token comes from the cache.
    again = generate_ids(cached, [first[0]] * 3, params)
    assert again == generate_ids(plain, [first[0]] * 3, params)


def test_cached_prefix_logits_match_a_full_prefill(plain: HFBackend) -> None:
    """The tolerance behind the equal ids: fp32 rounding, not a different computation."""
    cached = load_tiny(16384)
    prompts = [cached.encode(p) for p in debate_prompts()]
    cached._prefill_reused(prompts[:1], [1])  # the first prompt is cached; the others share its start
    logits, _ = cached._prefill_reused(prompts, [3] * len(prompts))
    for ids, lg in zip(prompts, logits, strict=True):
        with torch.no_grad():
            full = plain.model(torch.tensor([ids])).logits[0, -3:]
        assert torch.allclose(lg, full, atol=1e-5, rtol=0), (lg - full).abs().max()


async def test_choice_probs_with_and_without_reuse_agree(plain: HFBackend) -> None:
    cached = load_tiny(16384)
    choices = ["Yes", "No", "The city of Berlin"]
    prompts = debate_prompts() + debate_prompts("[round 1] A: rings.")
    want = await asyncio.gather(*[plain.choice_probs(p, choices) for p in prompts])
    got = await asyncio.gather(*[cached.choice_probs(p, choices) for p in prompts])
    assert cached.stats.reused_tokens > 0
    for w, g in zip(want, got, strict=True):
        for c in choices:
            assert g[c] == pytest.approx(w[c], abs=1e-5)
        assert g.usage == w.usage


def test_memory_stays_under_the_cap(plain: HFBackend) -> None:
    cached = load_tiny(150)  # smaller than two prompts: entries are evicted as batches come
    params = GenerateParams(max_tokens=4)
    prompts = debate_prompts() + debate_prompts("[round 1] A: rings.")
    assert generate_ids(cached, prompts, params) == generate_ids(plain, prompts, params)
    assert cached.prefix_cache is not None and 0 < cached.prefix_cache.tokens <= 150


def test_zero_turns_reuse_off_and_the_option_changes_no_identity() -> None:
    assert load_tiny(0).prefix_cache is None
    specs = [ModelSpec(name="embedded/tiny-gpt2", hf=HFOptions(prefix_cache_tokens=n)) for n in (0, 99)]
    assert spec_identity(specs[0]) == spec_identity(specs[1])
    assert "prefix_cache_tokens" not in spec_identity(specs[0])["hf"]
    # Configs hashed whole (ladder, tournament) keep the run ids of runs made before the option.
    assert run_id("r", specs[0], "d") == run_id("r", specs[1], "d")
    assert left_out(specs[0]) == {"hf": {"prefix_cache_tokens": True}}  # declared on HFOptions
    assert specs[0].model_dump()["hf"]["prefix_cache_tokens"] == 0  # a plain dump keeps it


# ---- the cache itself -------------------------------------------------------------------------
def fake_kv(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    t = torch.arange(n, dtype=torch.float32).reshape(1, 1, n, 1)
    return [(t, -t)]


def test_match_takes_the_longest_common_prefix_and_slices_it() -> None:
    cache = PrefixCache(100)
    cache.put([1, 2, 3, 4], fake_kv(4))
    cache.put([1, 2, 9], fake_kv(3))
    n, kv = cache.match([1, 2, 3, 7, 7], limit=10)
    assert n == 3 and kv[0][0].shape[2] == 3
    assert cache.match([1, 2, 3, 4], limit=3)[0] == 3  # the caller keeps tokens to compute
    assert cache.match([5], limit=1) == (0, [])


def test_an_extended_prompt_replaces_its_prefix_and_the_lru_evicts_the_oldest() -> None:
    cache = PrefixCache(10)
    cache.put([1, 2, 3], fake_kv(3))
    cache.put([1, 2, 3, 4, 5], fake_kv(5))  # extends the first: one entry serves both
    assert len(cache) == 1 and cache.tokens == 5
    cache.put([7, 8, 9], fake_kv(3))
    cache.match([1, 2], limit=2)  # touched: now the most recent
    cache.put([6, 6, 6], fake_kv(3))  # 11 tokens > 10: the least recent ([7, 8, 9]) goes
    assert cache.tokens == 8 and cache.match([7, 8, 9], limit=3)[0] == 0
    cache.put(list(range(20, 40)), fake_kv(20))  # longer than the cap: not kept
    assert cache.tokens == 8


def test_shared_in_batch_and_grouping() -> None:
    rows = [[1, 2, 3, 4], [9, 9], [1, 2, 3, 5, 6], [1, 2, 7]]
    assert shared_in_batch(rows) == [3, 0, 3, 2]
    groups = group_by_length([100, 10, 98, 11, 12])
    assert sorted(map(sorted, groups)) == [[0, 2], [1, 3, 4]]
    assert np.concatenate(groups).size == 5


@pytest.mark.slow
def test_smollm2_debate_turns_give_the_same_greedy_ids(smollm2: HFBackend) -> None:
    plain_smol = load_hf("embedded/smollm2", HFOptions(device="cpu", prefix_cache_tokens=0))
    assert smollm2.prefix_cache is not None
    params = GenerateParams(max_tokens=16)
    for prompts in (debate_prompts(), debate_prompts("[round 1] A: the rings. B: the moons.")):
        assert generate_ids(smollm2, prompts, params) == generate_ids(plain_smol, prompts, params)
