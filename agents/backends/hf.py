"""Local transformers backend with dynamic batching.

Concurrent `generate` calls share one left-padded, KV-cached decode loop; concurrent
`choice_probs` calls share their prompt forwards. Each row keeps its own max_tokens, temperature,
stop strings and seeded torch.Generator, so a row's output does not depend on its batch-mates
(up to float rounding of padded matmuls).

Prompt prefixes are reused (`HFOptions.prefix_cache_tokens`, agents/backends/prefix_cache.py): a
prompt's key/value states are kept, and a later prompt computes only what follows its longest
cached prefix. The outputs are those of a full prefill up to float rounding, as with batching;
`prefix_cache_tokens: 0` runs the one-forward-per-batch path of before, bit for bit.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer

from agents.backends.batching import DynamicBatcher
from agents.backends.embedded import CHATML_TEMPLATE, embedded_dir
from agents.backends.prefix_cache import (
    KV,
    PrefillStats,
    PrefixCache,
    group_by_length,
    shared_in_batch,
    stack_left_padded,
)
from agents.config import HFOptions, ModelSpec
from agents.errors import FatalModelError
from agents.types import ChoiceProbs, Completion, GenerateParams, Message, Usage

log = logging.getLogger(__name__)

#: A prefix that rows of one batch share is computed once, before them, when it is at least this
#: long: shorter ones (the chat template's first tokens) save less than a forward call costs.
MIN_SHARED_PREFIX = 16


def _chars(req: _Gen | _Score) -> int:
    """A tokenizer-free proxy for prompt length (tokens are counted later, on the worker)."""
    return sum(len(m.content) for m in req.messages)


@dataclass
class _Gen:
    messages: Sequence[Message]
    params: GenerateParams
    ids: list[int] | None = None  # filled on the worker thread


@dataclass
class _GenOut:
    ids: list[int]
    text: str
    finish: str


@dataclass
class _Score:
    messages: Sequence[Message]
    choices: Sequence[str]
    prompt: list[int] | None = None  # filled on the worker thread


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


class HFBackend:
    def __init__(self, name: str, source: str | Path, options: HFOptions | None = None):
        self.name = name
        self.options = options or HFOptions()
        self.device = resolve_device(self.options.device)
        dtype = resolve_dtype(self.options.dtype, self.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(self.device).eval()
        except OSError as e:
            raise FatalModelError(
                f"{name}: cannot load {source} ({e}). Give a local model directory, or a hub id "
                "with network access (HF_HUB_OFFLINE=1 forbids downloads)."
            ) from None
        tok = self.tokenizer
        if self.options.chat_template:
            tok.chat_template = self.options.chat_template
        elif not tok.chat_template:
            log.warning("%s has no chat template; using ChatML", name)
            tok.chat_template = CHATML_TEMPLATE
        gen_eos = self.model.generation_config.eos_token_id
        eos = {tok.eos_token_id} | set(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        self.eos_ids = {e for e in eos if e is not None}
        # pad with the tokenizer's pad id, else EOS: pads are masked, so the id only has to exist.
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else min(self.eos_ids)
        # transformers 5.24 renamed the KV-cache argument `past_key_values` to `cache`.
        self._cache_kw = (
            "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        )
        # One batch computes while the next fills up.
        self.default_concurrency = 2 * self.options.max_batch_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"hf-{name}")
        wait = self.options.batch_wait_ms / 1000
        size = self.options.max_batch_size
        self.gen_batcher = DynamicBatcher(
            self._generate_batch, self._executor, max_batch_size=size, max_wait_s=wait, size_of=_chars
        )
        self.score_batcher = DynamicBatcher(
            self._score_batch, self._executor, max_batch_size=size, max_wait_s=wait, size_of=_chars
        )
        self.stats = PrefillStats()
        self.prefix_cache = self._make_prefix_cache()

    def _make_prefix_cache(self) -> PrefixCache | None:
        """The prompt-prefix cache, if enabled and the model's KV cache is one plain tensor pair per
        layer (sliding-window or recurrent layers cannot be sliced at a prefix)."""
        if not self.options.prefix_cache_tokens:
            return None
        with torch.inference_mode():
            probe = self.model(input_ids=torch.tensor([[self.pad_id]], device=self.device), use_cache=True)
        layers = getattr(getattr(probe, self._cache_kw), "layers", None)
        if not layers or any(type(layer) is not DynamicLayer for layer in layers):
            log.warning("%s: KV cache cannot be reused by prefix (%s); prefix cache off", self.name, layers)
            return None
        return PrefixCache(self.options.prefix_cache_tokens)

    # ---- prompt encoding -------------------------------------------------------------------
    def encode(self, messages: Sequence[Message]) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            [m.model_dump() for m in messages], add_generation_prompt=True, tokenize=False
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ---- protocol --------------------------------------------------------------------------
    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        t0 = time.perf_counter()
        req = _Gen(messages, params)
        out = await self.gen_batcher.submit(req)
        return Completion(
            text=out.text,
            usage=Usage(input_tokens=len(req.ids or ()), output_tokens=len(out.ids)),
            seconds=time.perf_counter() - t0,
            model=self.name,
            finish_reason=out.finish,  # type: ignore[arg-type]
        )

    async def choice_probs(self, messages: Sequence[Message], choices: Sequence[str]) -> ChoiceProbs:
        t0 = time.perf_counter()
        req = _Score(messages, choices)
        logps = await self.score_batcher.submit(req)
        # Normalise in log space: long multi-token choices can underflow exp() one by one.
        top = max(logps)
        weights = [math.exp(lp - top) for lp in logps]
        total = sum(weights)
        return ChoiceProbs(
            probs={c: w / total for c, w in zip(choices, weights, strict=True)},
            method="logits",
            mass=math.exp(top) * total,
            usage=Usage(input_tokens=len(req.prompt or ()), output_tokens=0),
            seconds=time.perf_counter() - t0,
            model=self.name,
        )

    async def aclose(self) -> None:
        self.gen_batcher.close()
        self.score_batcher.close()
        self._executor.shutdown(wait=True)

    # ---- batched work (worker thread) ------------------------------------------------------
    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s) :] = torch.tensor(s)
            mask[i, width - len(s) :] = 1
        return ids.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def _generate_batch(self, reqs: list[_Gen]) -> list[_GenOut]:
        # Tokenise here, off the event loop, so concurrent callers reach the queue at once.
        seqs = [self.encode(r.messages) for r in reqs]
        for r, s in zip(reqs, seqs, strict=True):
            r.ids = s
        self.stats.prompt_tokens += sum(len(s) for s in seqs)
        t0 = time.perf_counter()
        if self.prefix_cache is None:
            first, cache, mask = self._prefill_padded(seqs)
        else:
            logits, kvs = self._prefill_reused(seqs, [1] * len(seqs))
            first = torch.cat(logits)  # (B, vocab)
            width = max(len(s) for s in seqs)
            cache = DynamicCache(ddp_cache_data=stack_left_padded(kvs, width))
            mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=self.device)
        self.stats.prefill_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        out = self._decode(reqs, first, cache, mask)
        self.stats.decode_s += time.perf_counter() - t0
        self.stats.decode_tokens += sum(len(o.ids) for o in out)
        return out

    def _prefill_padded(self, seqs: list[list[int]]) -> tuple[torch.Tensor, object, torch.Tensor]:
        """All prompts in one left-padded forward: (last logits (B, vocab), KV cache, mask)."""
        ids, mask = self._left_pad(seqs)  # (B, T)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        self.stats.computed_tokens += sum(len(s) for s in seqs)
        # logits_to_keep=1: only the last position's logits, not a (B, T, vocab) tensor.
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1
        )
        return out.logits[:, -1, :], getattr(out, self._cache_kw), mask

    def _decode(
        self, reqs: list[_Gen], first: torch.Tensor, cache: object, mask: torch.Tensor
    ) -> list[_GenOut]:
        """The KV-cached decode loop from each row's last prompt logits; `mask` marks real tokens."""
        gens = [_generator(r.params, self.device) for r in reqs]
        pos = mask.sum(-1, keepdim=True)  # (B, 1): the next token's position in each row
        logits = first
        new: list[list[int]] = [[] for _ in reqs]
        finish: list[str | None] = [None] * len(reqs)
        for _ in range(max(r.params.max_tokens for r in reqs)):
            nxt = self._pick(logits.float(), reqs, gens)  # (B,)
            for i, r in enumerate(reqs):
                if finish[i] is not None:
                    continue
                tok = int(nxt[i])
                new[i].append(tok)
                if tok in self.eos_ids or _hit_stop(self.tokenizer, new[i], r.params.stop):
                    finish[i] = "stop"
                elif len(new[i]) >= r.params.max_tokens:
                    finish[i] = "length"
            if all(f is not None for f in finish):
                break
            # Finished rows keep decoding a pad; their outputs are ignored.
            feed = torch.tensor(
                [[t if f is None else self.pad_id] for t, f in zip(nxt.tolist(), finish, strict=True)]
            )
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            out = self.model(
                input_ids=feed.to(self.device),
                attention_mask=mask,
                position_ids=pos,
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_kw: cache},
            )
            cache, logits, pos = getattr(out, self._cache_kw), out.logits[:, -1, :], pos + 1
        results = []
        for r, toks, f in zip(reqs, new, finish, strict=True):
            text = self.tokenizer.decode([t for t in toks if t not in self.eos_ids], skip_special_tokens=True)
            results.append(_GenOut(ids=toks, text=_cut_at_stop(text, r.params.stop), finish=f or "length"))
        return results

    # ---- prefix reuse (worker thread) ------------------------------------------------------
    def _prefill_reused(self, seqs: list[list[int]], needs: list[int]) -> tuple[list[torch.Tensor], list[KV]]:
        """Per row: the logits of its last `need` positions (need, vocab) and its prompt's KV.

        A prefix that several rows of the batch share, and that the cache lacks, is computed first
        (recursively, so a prefix all rows share is computed once too); then each row computes only
        what follows its longest cached prefix, in groups of similar length.
        """
        cache = self.prefix_cache
        assert cache is not None
        firsts: dict[tuple[int, ...], None] = {}
        for s, need, shared in zip(seqs, needs, shared_in_batch(seqs), strict=True):
            p = min(shared, len(s) - need)
            if p <= cache.max_tokens and p - cache.match(s, p)[0] >= MIN_SHARED_PREFIX:
                firsts[tuple(s[:p])] = None
        if firsts:
            self._prefill_reused([list(k) for k in firsts], [1] * len(firsts))
        found = [cache.match(s, len(s) - need) for s, need in zip(seqs, needs, strict=True)]
        logits: list[torch.Tensor] = [torch.empty(0)] * len(seqs)
        kvs: list[KV] = [[] for _ in seqs]
        for group in group_by_length([len(s) - p for s, (p, _) in zip(seqs, found, strict=True)]):
            outs = self._forward_group(
                [seqs[i] for i in group], [found[i] for i in group], [needs[i] for i in group]
            )
            for i, (lg, kv) in zip(group, outs, strict=True):
                logits[i], kvs[i] = lg, kv
                cache.put(seqs[i], kv)
        return logits, kvs

    def _forward_group(
        self, seqs: list[list[int]], pasts: list[tuple[int, KV]], needs: list[int]
    ) -> list[tuple[torch.Tensor, KV]]:
        """One forward of rows that continue cached prefixes. Row i's sequence is its prefix,
        right-aligned in a (G, P) past, then its suffix, right-aligned in a (G, S) input: pads sit
        left of each part, masked, and positions are given explicitly, so no real token sees one."""
        plen = [p for p, _ in pasts]
        width_p = max(plen)
        sufs = [s[p:] for s, p in zip(seqs, plen, strict=True)]
        width_s = max(len(x) for x in sufs)
        self.stats.computed_tokens += sum(len(x) for x in sufs)
        ids = torch.full((len(seqs), width_s), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width_p + width_s), dtype=torch.long)
        pos = torch.zeros((len(seqs), width_s), dtype=torch.long)
        for i, (suf, p) in enumerate(zip(sufs, plen, strict=True)):
            ids[i, width_s - len(suf) :] = torch.tensor(suf)
            mask[i, width_p - p : width_p] = 1
            mask[i, width_p + width_s - len(suf) :] = 1
            pos[i, width_s - len(suf) :] = torch.arange(p, p + len(suf))
        kw = {}
        if width_p:
            past = stack_left_padded([kv for _, kv in pasts], width_p)
            kw[self._cache_kw] = DynamicCache(ddp_cache_data=past)
        out = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=pos.to(self.device),
            use_cache=True,
            logits_to_keep=max(needs),
            **kw,
        )
        layers = [(layer.keys, layer.values) for layer in getattr(out, self._cache_kw).layers]
        results = []
        for i, (suf, p, need) in enumerate(zip(sufs, plen, needs, strict=True)):
            keep = torch.cat(
                [
                    torch.arange(width_p - p, width_p),
                    torch.arange(width_p + width_s - len(suf), width_p + width_s),
                ]
            ).to(self.device)
            kv = [(k[i : i + 1, :, keep], v[i : i + 1, :, keep]) for k, v in layers]
            results.append((out.logits[i, out.logits.shape[1] - need :], kv))
        return results

    def _pick(
        self, logits: torch.Tensor, reqs: list[_Gen], gens: list[torch.Generator | None]
    ) -> torch.Tensor:
        picked = logits.argmax(-1)
        for i, r in enumerate(reqs):
            if r.params.temperature > 0:
                probs = _top_p(torch.softmax(logits[i] / r.params.temperature, -1), r.params.top_p)
                picked[i] = torch.multinomial(probs, 1, generator=gens[i])[0]
        return picked

    @torch.inference_mode()
    def _score_batch(self, reqs: list[_Score]) -> list[list[float]]:
        # A choice c scores sum_j log p(c_j | prompt, c_<j). Rows are prompt + c[:-1]; identical
        # rows are run once, so single-token choices (Yes/No) cost one prompt forward in total.
        encoded = []
        for r in reqs:
            r.prompt = self.encode(r.messages)
            encoded.append(
                (r.prompt, [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in r.choices])
            )
        rows: dict[tuple[int, ...], int] = {}
        needs: list[int] = []  # per row: how many of its last positions' logits some choice reads
        for prompt, cids in encoded:
            for c in cids:
                row = rows.setdefault(tuple(prompt + c[:-1]), len(rows))
                if row == len(needs):
                    needs.append(1)
                needs[row] = max(needs[row], len(c))
        seqs = [list(k) for k in rows]
        self.stats.prompt_tokens += sum(len(s) for s in seqs)
        t0 = time.perf_counter()
        logp = self._row_logprobs(seqs, needs)
        self.stats.prefill_s += time.perf_counter() - t0
        out = []
        for prompt, cids in encoded:
            scores = []
            for c in cids:
                row = rows[tuple(prompt + c[:-1])]
                start = len(prompt) - 1 - (len(seqs[row]) - needs[row])  # in the row's kept positions
                scores.append(float(sum(logp[row][start + j, t] for j, t in enumerate(c))))
            out.append(scores)
        return out

    def _row_logprobs(self, seqs: list[list[int]], needs: list[int]) -> list[torch.Tensor]:
        """Per row, log-probabilities (need, vocab) at its last `need` positions, on the CPU."""
        if self.prefix_cache is not None:
            logits, _ = self._prefill_reused(seqs, needs)
            return [torch.log_softmax(lg.float(), -1).cpu() for lg in logits]
        self.stats.computed_tokens += sum(len(s) for s in seqs)
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(seqs):  # right padding: real tokens never see a pad
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        logp = torch.log_softmax(
            self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float(), -1
        ).cpu()
        return [logp[i, len(s) - n : len(s)] for i, (s, n) in enumerate(zip(seqs, needs, strict=True))]


def _generator(params: GenerateParams, device: torch.device) -> torch.Generator | None:
    if params.temperature == 0 or params.seed is None:
        return None
    return torch.Generator(device=device).manual_seed(params.seed)


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    if top_p >= 1.0:
        return probs
    sorted_p, order = probs.sort(descending=True)
    keep = sorted_p.cumsum(-1) - sorted_p < top_p  # always keeps the most likely token
    filtered = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    return filtered / filtered.sum()


def _hit_stop(tokenizer: object, toks: list[int], stop: tuple[str, ...]) -> bool:
    if not stop:
        return False
    text = tokenizer.decode(toks, skip_special_tokens=True)  # type: ignore[attr-defined]
    return any(s in text for s in stop)


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    cut = min((text.index(s) for s in stop if s in text), default=len(text))
    return text[:cut]


def hf_source(name: str) -> str | Path:
    """Where `hf/<dir or hub id>` or `embedded/<smollm2|tiny-gpt2>` loads its weights from."""
    provider, _, rest = name.partition("/")
    if not rest:
        raise FatalModelError(f"model name {name!r} needs a path or id after '{provider}/'")
    return embedded_dir(rest) if provider == "embedded" else rest


def load_hf(name: str, options: HFOptions | None = None) -> HFBackend:
    """`hf/<dir or hub id>` or `embedded/<smollm2|tiny-gpt2>`."""
    return HFBackend(name, hf_source(name), options)


def from_spec(spec: ModelSpec) -> HFBackend:
    """The `hf` and `embedded` providers' factory (agents.providers)."""
    return load_hf(spec.name, spec.hf)
