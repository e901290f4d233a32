"""Frozen features of a strong model, computed once and cached on disk, row by row.

A cache directory per model identity (its config.json and weight file sizes), pooling, max_length,
prompt template and hidden layer holds chunk files of rows keyed by the hash of each row's text, so
any run reads every row an earlier run computed, whatever rows it came with, and computes only the
rest; nothing stale is ever read. Rows are written a chunk at a time as they are computed, so a
killed run keeps what it finished. Each layer is its own directory: one forward pass fills every
layer a config (or a sweep over layers) asks for, and a config of several layers concatenates them.
(Caches of earlier trees, one `features-<key>.pt` file per whole set of texts, are not read.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from w2sg.data import Example
from w2sg.progress import track

log = logging.getLogger(__name__)

#: How a (question, answer) row is shown to a causal LM whose hidden state we read.
LM_TEMPLATE = "Question: {question}\nProposed answer: {answer}\nIs the proposed answer correct?"

#: Computed rows are written in chunks of this many (whole batches): a killed run loses at most one
#: chunk's work (SmolLM2-135M on one CPU core: under a minute). Chunks end at the same rows in every
#: process of a torchrun, so its processes write the same files rather than one copy each.
CHUNK_ROWS = 512


def lm_text(e: Example) -> str:
    return LM_TEMPLATE.format(question=e.question, answer=e.answer)


def model_fingerprint(model_dir: str | Path) -> str:
    d = Path(model_dir)
    if not d.is_dir():
        return str(model_dir)  # a hub id: its name is all we know offline
    parts = [(d / "config.json").read_text() if (d / "config.json").exists() else ""]
    parts += [
        f"{p.name}:{p.stat().st_size}" for p in sorted(d.glob("*.safetensors")) + sorted(d.glob("*.bin"))
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """hidden (B, T, H), mask (B, T) with right padding → (B, H)."""
    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1)
    last = mask.sum(1) - 1  # index of the last non-pad token of each row
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


@torch.inference_mode()
def encode_batches(
    model_dir: str | Path,
    texts: Sequence[str],
    *,
    pooling: str = "last",
    max_length: int = 128,
    batch_size: int = 16,
    device: str = "cpu",
    layers: Sequence[int] = (-1,),
) -> Iterator[tuple[list[int], dict[int, torch.Tensor]]]:
    """Pooled hidden states of each of `layers` (indices into `hidden_states`: 0 = embeddings,
    -1 = the last layer), one forward pass a batch: yields (indices into `texts`, {layer: (B, H)})."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "right"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    # Shortest first: less padding per batch.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    n_hidden = model.config.num_hidden_layers + 1  # hidden_states: the embeddings, then each layer
    for layer in layers:
        if not -n_hidden <= layer < n_hidden:
            raise ValueError(
                f"layer {layer} is out of range for {model_dir}: it has {n_hidden} hidden states "
                f"(0 = embeddings … {n_hidden - 1} = last, or -1)"
            )
    stage = f"features {Path(str(model_dir)).name} ({len(texts)} rows)"
    # The bar only on a terminal (disable=None); the progress lines serve a log file.
    batches = tqdm(range(0, len(texts), batch_size), desc="features", unit="batch", leave=False, disable=None)
    with track(stage, len(texts), unit="rows", quiet=True) as progress:
        for s in batches:
            idx = order[s : s + batch_size]
            enc = tok(
                [texts[i] for i in idx],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_length,
            ).to(device)
            hidden = model(**enc, output_hidden_states=True).hidden_states
            yield (
                idx,
                {
                    layer: pool(hidden[layer].float(), enc["attention_mask"], pooling).cpu()
                    for layer in layers
                },
            )
            progress.advance(len(idx))


def compute_features(model_dir: str | Path, texts: Sequence[str], **encode: Any) -> dict[int, torch.Tensor]:
    """{layer: (N, H)} features of `texts`, computed without the cache (`encode_batches`' options)."""
    out: dict[int, torch.Tensor] = {}
    for idx, feats in encode_batches(model_dir, texts, **encode):
        for layer, f in feats.items():
            out.setdefault(layer, torch.empty(len(texts), f.shape[1]))[idx] = f
    return out


KEY_BYTES = 16  # of a text's sha256: 128 bits, no collision among any number of rows we will see


def text_key(text: str) -> bytes:
    """A row's key in a cache directory: the hash of the text the model reads."""
    return hashlib.sha256(text.encode()).digest()[:KEY_BYTES]


def chunk_name(keys: Sequence[bytes]) -> str:
    """A chunk file's name, from its rows: processes that compute the same rows write one file."""
    return f"chunk-{hashlib.sha256(b''.join(keys)).hexdigest()[:24]}.pt"


def pack_keys(keys: Sequence[bytes]) -> torch.Tensor:
    """Keys as a (n, KEY_BYTES) uint8 tensor: `weights_only`'s unpickler is Python, and reads a
    list of strings ~25× slower (20,000 keys: 0.4 s)."""
    return torch.frombuffer(bytearray(b"".join(keys)), dtype=torch.uint8).reshape(len(keys), KEY_BYTES)


def unpack_keys(packed: torch.Tensor) -> list[bytes]:
    raw = packed.numpy().tobytes()
    return [raw[i : i + KEY_BYTES] for i in range(0, len(raw), KEY_BYTES)]


def layer_dir(
    cache_dir: str | Path, model_dir: str | Path, pooling: str, max_length: int, layer: int
) -> Path:
    """The directory of one (model, pooling, max_length, prompt template, layer)'s rows."""
    ident = json.dumps([model_fingerprint(model_dir), pooling, max_length, LM_TEMPLATE, layer])
    return Path(cache_dir) / f"features-{hashlib.sha256(ident.encode()).hexdigest()[:24]}"


def _damaged(file: Path, problem: str) -> None:
    log.warning("%s: damaged feature cache entry (%s); deleted, computing it again", file, problem)
    file.unlink(missing_ok=True)  # another process may have found it first


def _chunk_problem(file: Path, chunk: object) -> str:
    keys, feats = (chunk.get("keys"), chunk.get("features")) if isinstance(chunk, dict) else (None, None)
    if not isinstance(keys, torch.Tensor) or not isinstance(feats, torch.Tensor):
        return f"holds {type(chunk).__name__}, not a chunk of features"
    if keys.dtype != torch.uint8 or keys.ndim != 2 or keys.shape[1] != KEY_BYTES:
        return f"its keys are {tuple(keys.shape)} {keys.dtype}, not (n, {KEY_BYTES}) uint8"
    if feats.ndim != 2 or feats.shape[0] != len(keys) or feats.dtype != torch.float32:
        return f"holds {tuple(feats.shape)} {feats.dtype} features for {len(keys)} rows"
    if file.name != chunk_name([bytes(keys.numpy())]):  # the hash of the keys end to end
        return "its rows are not the ones its name says"
    return ""


def read_chunk(file: Path) -> tuple[list[bytes], torch.Tensor] | None:
    """A chunk file's (keys, (n, H) features), or None when it is gone or not one: a damaged
    file (cut short, overwritten, another program's) is named in a warning and deleted, so its
    rows are computed again. Read with `weights_only`, so no file can run code when loaded, and
    mapped (`mmap`), so rows no one asks for are never read from disk."""
    try:
        chunk = torch.load(file, weights_only=True, mmap=True)
    except FileNotFoundError:
        return None  # deleted by another process since it was listed
    except Exception as e:  # a damaged file fails in the zip reader, the unpickler or a tensor's rebuild
        _damaged(file, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return None
    if problem := _chunk_problem(file, chunk):
        _damaged(file, problem)
        return None
    return unpack_keys(chunk["keys"]), chunk["features"]


class LayerCache:
    """The rows of one `layer_dir` that a caller wants. Its chunk files hold `{"keys": (n,
    KEY_BYTES) uint8 (`pack_keys`), "features": (n, H) float32}`, each named by the hash of its
    keys and written whole (a temp file per process, then a rename): no reader sees half a chunk."""

    def __init__(self, path: Path, wanted: Collection[bytes]):
        self.path = path
        self.chunks: list[torch.Tensor] = []
        self.rows: dict[bytes, int] = {}  # key → its chunk's index << 32 | its row there
        found = [(f, c) for f in sorted(path.glob("chunk-*.pt")) if (c := read_chunk(f)) is not None]
        # All of a layer's features have one width; a chunk of another is not this cache's.
        width = Counter(feats.shape[1] for _, (_, feats) in found).most_common(1)[0][0] if found else 0
        for file, (keys, feats) in found:
            if feats.shape[1] == width:
                self._register(keys, feats, wanted)
            else:
                _damaged(file, f"its rows have {feats.shape[1]} features, the others {width}")

    def __contains__(self, key: bytes) -> bool:
        return key in self.rows

    def _register(self, keys: Sequence[bytes], feats: torch.Tensor, wanted: Collection[bytes]) -> None:
        base = len(self.chunks) << 32
        hits = {k: base | r for r, k in enumerate(keys) if k in wanted and k not in self.rows}
        if hits:  # a chunk of no wanted row is dropped: its mapped rows are never read
            self.chunks.append(feats)
            self.rows.update(hits)

    def write(self, keys: Sequence[bytes], feats: torch.Tensor) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        file = self.path / chunk_name(keys)
        tmp = file.with_suffix(f".{os.getpid()}.tmp")  # the processes of one torchrun write at once
        torch.save({"keys": pack_keys(keys), "features": feats}, tmp)
        tmp.rename(file)  # atomic: a killed run never leaves half a file under the real name
        self._register(keys, feats, set(keys))

    def gather(self, keys: Sequence[bytes]) -> torch.Tensor:
        """(len(keys), H) features of `keys`, every one of them here."""
        if not keys:
            return torch.empty(0, self.chunks[0].shape[1] if self.chunks else 0)
        where = torch.from_numpy(np.fromiter((self.rows[k] for k in keys), np.int64, len(keys)))
        sizes = torch.tensor([len(c) for c in self.chunks])
        starts = torch.cumsum(sizes, 0) - sizes
        # Every chunk here holds a wanted row: read them end to end (in order), then one gather.
        stacked = self.chunks[0] if len(self.chunks) == 1 else torch.cat(self.chunks)
        return stacked.index_select(0, starts[where >> 32] + (where & 0xFFFFFFFF))


def _write_chunk(
    caches: dict[int, LayerCache],
    keys: Sequence[bytes],
    batches: list[tuple[list[int], dict[int, torch.Tensor]]],
) -> None:
    """Writes computed batches to each layer's cache: the rows that layer lacks."""
    idx = [i for b, _ in batches for i in b]
    for layer, cache in caches.items():
        feats = torch.cat([f[layer] for _, f in batches])  # a new tensor: it saves only these rows
        keep = [r for r, i in enumerate(idx) if keys[i] not in cache]
        if keep:
            cache.write([keys[idx[r]] for r in keep], feats if len(keep) == len(idx) else feats[keep])


def _compute_into(
    caches: dict[int, LayerCache],
    model_dir: str | Path,
    keys: Sequence[bytes],
    texts: Sequence[str],
    *,
    chunk_rows: int,
    **encode: Any,
) -> None:
    """Computes `texts` in one pass for every layer of `caches`, and writes them `chunk_rows` rows
    at a time: a killed run keeps the chunks it wrote."""
    batches: list[tuple[list[int], dict[int, torch.Tensor]]] = []
    for batch in encode_batches(model_dir, texts, layers=list(caches), **encode):
        batches.append(batch)
        if sum(len(b) for b, _ in batches) >= chunk_rows:
            _write_chunk(caches, keys, batches)
            batches = []
    if batches:
        _write_chunk(caches, keys, batches)


def cached_features(
    model_dir: str | Path,
    examples: Sequence[Example],
    cache_dir: str | Path,
    *,
    pooling: str = "last",
    max_length: int = 128,
    batch_size: int = 16,
    device: str = "cpu",
    layers: Sequence[int] = (-1,),
    chunk_rows: int = CHUNK_ROWS,
) -> torch.Tensor:
    """(N, H · len(layers)) float32 features for `examples`: each layer's pooled hidden state,
    concatenated in the order given; every row any earlier run cached is read, the rest computed."""
    texts = [lm_text(e) for e in examples]
    keys = [text_key(t) for t in texts]
    wanted = set(keys)
    caches = {
        layer: LayerCache(layer_dir(cache_dir, model_dir, pooling, max_length, layer), wanted)
        for layer in dict.fromkeys(layers)
    }
    lacking = {layer: c for layer, c in caches.items() if not wanted <= c.rows.keys()}
    if lacking:
        absent = set().union(*(wanted - c.rows.keys() for c in lacking.values()))
        # Each missing text once, in the order given: computing all rows batches them as before.
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k in absent}
        log.info(
            "computing %d of %d rows' features (layers %s) from %s",
            len(todo),
            len(keys),
            list(lacking),
            model_dir,
        )
        encode = {"pooling": pooling, "max_length": max_length, "batch_size": batch_size, "device": device}
        _compute_into(
            lacking,
            model_dir,
            list(todo),
            list(todo.values()),
            chunk_rows=chunk_rows,
            **encode,
        )
    parts = [caches[layer].gather(keys) for layer in layers]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
