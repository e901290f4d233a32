"""Frozen features of a strong model, computed once and cached on disk.

Key = model identity (its config.json and weight file sizes), pooling, max_length, prompt template,
hidden layer and the exact texts, so a change to any of them recomputes and nothing stale is ever
read. Each layer is its own file: one forward pass fills every layer a config (or a sweep over
layers) asks for, and a config of several layers concatenates their files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from w2sg.data import Example
from w2sg.progress import track

log = logging.getLogger(__name__)

#: How a (question, answer) row is shown to a causal LM whose hidden state we read.
LM_TEMPLATE = "Question: {question}\nProposed answer: {answer}\nIs the proposed answer correct?"


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


def features_key(
    model_dir: str | Path, texts: Sequence[str], pooling: str, max_length: int, layer: int = -1
) -> str:
    h = hashlib.sha256()
    ident = [model_fingerprint(model_dir), pooling, max_length, LM_TEMPLATE]
    # The last layer keeps the key it had before layers could be chosen: existing caches stay valid.
    h.update(json.dumps(ident if layer == -1 else [*ident, layer]).encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\x1e")
    return h.hexdigest()[:24]


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """hidden (B, T, H), mask (B, T) with right padding → (B, H)."""
    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1)
    last = mask.sum(1) - 1  # index of the last non-pad token of each row
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


@torch.inference_mode()
def compute_features(
    model_dir: str | Path,
    texts: Sequence[str],
    *,
    pooling: str = "last",
    max_length: int = 128,
    batch_size: int = 16,
    device: str = "cpu",
    layers: Sequence[int] = (-1,),
) -> dict[int, torch.Tensor]:
    """Pooled hidden states of each of `layers` (indices into `hidden_states`: 0 = embeddings,
    -1 = the last layer), from one forward pass."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "right"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    # Shortest first: less padding per batch; the order is restored below.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    n_hidden = model.config.num_hidden_layers + 1  # hidden_states: the embeddings, then each layer
    for layer in layers:
        if not -n_hidden <= layer < n_hidden:
            raise ValueError(
                f"layer {layer} is out of range for {model_dir}: it has {n_hidden} hidden states "
                f"(0 = embeddings … {n_hidden - 1} = last, or -1)"
            )
    out = {layer: torch.empty((len(texts), model.config.hidden_size)) for layer in layers}
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
            for layer, feats in out.items():
                feats[idx] = pool(hidden[layer].float(), enc["attention_mask"], pooling).cpu()
            progress.advance(len(idx))
    return out


def _cached(path: Path, n: int) -> torch.Tensor | None:
    """A cache entry's (n, H) features, or None when there is none, or it is not one: a damaged
    entry (cut short, overwritten, another program's file) is named in a warning, deleted and
    computed again. Read with `weights_only`, so no file can run code when loaded."""
    if not path.exists():
        return None
    try:
        feats = torch.load(path, weights_only=True)
        ok = isinstance(feats, torch.Tensor) and feats.ndim == 2 and feats.shape[0] == n
        problem = "" if ok else f"holds {type(feats).__name__}, not ({n}, H) features"
    except Exception as e:  # a damaged file fails in the zip reader, the unpickler or a tensor's rebuild
        problem = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if not problem:
        return feats
    log.warning("%s: damaged feature cache entry (%s); deleted, computing it again", path, problem)
    path.unlink()
    return None


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
) -> torch.Tensor:
    """(N, H · len(layers)) float32 features for `examples`: each layer's pooled hidden state,
    concatenated in the order given; each layer from the cache when its key matches."""
    texts = [lm_text(e) for e in examples]
    paths = {
        layer: Path(cache_dir) / f"features-{features_key(model_dir, texts, pooling, max_length, layer)}.pt"
        for layer in layers
    }
    feats = {layer: _cached(path, len(texts)) for layer, path in paths.items()}
    missing = [layer for layer, f in feats.items() if f is None]
    if missing:
        log.info("computing %d features (layers %s) from %s", len(texts), missing, model_dir)
        computed = compute_features(
            model_dir,
            texts,
            pooling=pooling,
            max_length=max_length,
            batch_size=batch_size,
            device=device,
            layers=missing,
        )
        for layer, f in computed.items():
            feats[layer], path = f, paths[layer]
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")  # processes of one torchrun write it at once
            torch.save(f, tmp)
            tmp.rename(path)  # atomic: a killed run never leaves half a file under the real name
    return torch.cat([feats[layer] for layer in layers], dim=1)  # type: ignore[misc]
