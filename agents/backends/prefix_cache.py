"""Prompt-prefix KV reuse for the hf backend: an LRU of prompts' key/value states, bounded in tokens.

A causal model's keys and values at position i depend only on tokens 0..i, so the states stored for
one prompt serve, sliced, any later prompt that starts with the same tokens: the debater prompts of
one question share the question, each round's prompt extends the last one's passage, the N prompts
of best-of-N are one prompt. Entries are whole prompts; a lookup takes the longest common prefix
with any entry, so no block size or trie is needed. An entry that another extends is dropped (the
longer one serves both). Everything runs on the backend's one worker thread: no locks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import torch

#: Keys and values of every layer, each (1, kv_heads, tokens, head_dim).
KV = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class PrefillStats:
    """What the prefill and decode loops did, for benchmarks: tokens and seconds."""

    prompt_tokens: int = 0  # tokens of the prompts callers sent
    computed_tokens: int = 0  # prompt tokens run through the model (the rest came from the cache)
    prefill_s: float = 0.0
    decode_tokens: int = 0  # generated tokens that callers received
    decode_s: float = 0.0

    @property
    def reused_tokens(self) -> int:
        return self.prompt_tokens - self.computed_tokens

    @property
    def reused_share(self) -> float:
        return self.reused_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass
class _Entry:
    ids: np.ndarray
    kv: KV = field(repr=False)


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


def slice_kv(kv: KV, length: int) -> KV:
    return [(k[:, :, :length], v[:, :, :length]) for k, v in kv]


class PrefixCache:
    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self.tokens = 0
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, ids: Sequence[int], limit: int) -> tuple[int, KV]:
        """The longest cached prefix of `ids`, at most `limit` tokens: (length, its states)."""
        arr = np.asarray(ids, dtype=np.int64)
        best, best_key = 0, None
        for key, e in self._entries.items():
            n = common_prefix(e.ids, arr)
            if n > best:
                best, best_key = n, key
        best = min(best, limit)
        if best_key is None or best == 0:
            return 0, []
        self._entries.move_to_end(best_key)
        return best, slice_kv(self._entries[best_key].kv, best)

    def put(self, ids: Sequence[int], kv: KV) -> None:
        arr = np.asarray(ids, dtype=np.int64)
        if not 0 < len(arr) <= self.max_tokens:
            return
        key = arr.tobytes()
        if key in self._entries:
            self._entries.move_to_end(key)
            return
        for k in [k for k, e in self._entries.items() if common_prefix(e.ids, arr) == len(e.ids)]:
            self._drop(k)  # a prefix of the new entry: the new one serves its callers too
        self._entries[key] = _Entry(arr, kv)
        self.tokens += len(arr)
        while self.tokens > self.max_tokens:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: bytes) -> None:
        self.tokens -= len(self._entries.pop(key).ids)


def shared_in_batch(seqs: Sequence[Sequence[int]]) -> list[int]:
    """Per row, its longest common prefix with any other row of the batch (0 for a lone row).

    Sorted, a row's best partner is a neighbour, so n log n comparisons suffice.
    """
    arrs = [np.asarray(s, dtype=np.int64) for s in seqs]
    order = sorted(range(len(seqs)), key=lambda i: tuple(seqs[i]))
    shared = [0] * len(seqs)
    for a, b in pairwise(order):
        n = common_prefix(arrs[a], arrs[b])
        shared[a], shared[b] = max(shared[a], n), max(shared[b], n)
    return shared


def group_by_length(lengths: Sequence[int], slack: float = 1.25) -> list[list[int]]:
    """Row indices in groups of similar length: a group's padded size stays within `slack` of its
    real tokens, so one forward per group wastes little compute on padding."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    total = 0
    for i in order:
        g = groups[-1] if groups else None
        if g is not None and (len(g) + 1) * lengths[i] <= slack * (total + lengths[i]):
            g.append(i)
            total += lengths[i]
        else:
            groups.append([i])
            total = lengths[i]
    return groups


def stack_left_padded(kvs: Sequence[KV], width: int) -> KV:
    """Rows' states (each layer (1, heads, n_i, dim), or [] for none) as one batch per layer,
    (rows, heads, width, dim), each row right-aligned after zeros that the attention mask hides."""
    some = next(kv for kv in kvs if kv)
    out = []
    for layer, (k0, v0) in enumerate(some):
        k_all = k0.new_zeros((len(kvs), k0.shape[1], width, k0.shape[3]))
        v_all = v0.new_zeros((len(kvs), v0.shape[1], width, v0.shape[3]))
        for i, kv in enumerate(kvs):
            if kv:
                k, v = kv[layer]
                k_all[i, :, width - k.shape[2] :] = k[0]
                v_all[i, :, width - v.shape[2] :] = v[0]
        out.append((k_all, v_all))
    return out
