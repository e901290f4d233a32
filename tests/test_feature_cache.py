"""The strong-model feature cache: rows are keyed one by one, so any run reuses every row an earlier
run computed and a killed run keeps its finished chunks; damaged chunks are named, deleted and
computed again; each layer has its own directory."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import w2sg.features as features
from agents.names import resolve_model_path
from w2sg.data import Example, make_example
from w2sg.features import cached_features, chunk_name, compute_features, lm_text, unpack_keys

MODEL = resolve_model_path("embedded/tiny-gpt2")
ENCODE = features.encode_batches  # before any test wraps it

# A row computed in a batch of other rows is padded to another length, and its features can differ
# in the last bits (kernels sum in another order): float32 rounding, 1e-7 of their size. Measured:
# SmolLM2-135M, layers 18 and 22, SciQ rows: at most 5e-5 on features up to 133 (4e-7 of it).
# tiny-gpt2 on one core happens to match bit for bit; this bound holds on any kernel.
TOL = 1e-5


def rows(n: int, start: int = 0) -> list[Example]:
    """Rows of different lengths, so batches pad."""
    return [
        make_example(f"question {i}{' and more' * (i % 4)}?", "answer", i % 2)
        for i in range(start, start + n)
    ]


class Encoded:
    """Wraps `encode_batches`: records the texts and layers each pass encodes; raises on batch
    `fail_at` (1-based), as a run killed there would stop."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int = 0):
        self.texts: list[str] = []
        self.layers: list[list[int]] = []
        self.batches, self.fail_at = 0, fail_at

        def wrapper(model_dir: Any, texts: list[str], **kw: Any) -> Iterator[Any]:
            self.layers.append(list(kw.get("layers", [-1])))
            for idx, feats in ENCODE(model_dir, texts, **kw):
                self.batches += 1
                if self.batches == self.fail_at:
                    raise KeyboardInterrupt
                self.texts += [texts[i] for i in idx]
                yield idx, feats

        monkeypatch.setattr(features, "encode_batches", wrapper)


def chunks(cache: Path) -> list[Path]:
    return sorted(cache.glob("features-*/chunk-*.pt"))


def test_a_fresh_computation_equals_the_uncached_one_bit_for_bit(tmp_path: Path) -> None:
    # Written in chunks of one batch, the rows are still batched as one uncached pass batches them.
    xs = rows(7)
    cached = cached_features(MODEL, xs, tmp_path, batch_size=2, chunk_rows=2)
    assert len(chunks(tmp_path)) == 4
    assert torch.equal(cached, compute_features(MODEL, [lm_text(e) for e in xs], batch_size=2)[-1])
    assert torch.equal(cached_features(MODEL, xs, tmp_path, batch_size=2), cached)  # read back
    assert not list(tmp_path.glob("features-*/*.tmp"))


def test_rows_cached_with_other_rows_are_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = rows(6), rows(5, start=6)
    asked = [*b[:2], *a, *b[2:]]
    fresh = compute_features(MODEL, [lm_text(e) for e in asked], batch_size=4)[-1]
    first = cached_features(MODEL, a, tmp_path, batch_size=4)
    enc = Encoded(monkeypatch)
    both = cached_features(MODEL, asked, tmp_path, batch_size=4)
    assert sorted(enc.texts) == sorted(lm_text(e) for e in b)  # only B was computed
    assert torch.equal(both[2:8], first)  # A's rows as cached, in the order asked
    assert torch.allclose(both, fresh, rtol=TOL, atol=TOL)  # as if computed together
    assert torch.equal(cached_features(MODEL, b[1:4], tmp_path), both[[1, 8, 9]])  # a subset: no pass
    assert len(enc.layers) == 1


def test_a_killed_run_keeps_its_finished_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xs = rows(8)
    whole = compute_features(MODEL, [lm_text(e) for e in xs], batch_size=2)[-1]
    killed = Encoded(monkeypatch, fail_at=3)
    with pytest.raises(KeyboardInterrupt):  # in batch 3, after chunks of batches 1 and 2 were written
        cached_features(MODEL, xs, tmp_path, batch_size=2, chunk_rows=2)
    assert len(killed.texts) == 4 and len(chunks(tmp_path)) == 2
    rerun = Encoded(monkeypatch)
    again = cached_features(MODEL, xs, tmp_path, batch_size=2)
    assert len(rerun.texts) == 4 and not set(rerun.texts) & set(killed.texts)  # only the rest
    assert torch.equal(again, whole)  # the rest batched as the whole pass batched it


def test_feature_cache_hits_and_invalidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xs = rows(6)
    a = cached_features(MODEL, xs, tmp_path)
    enc = Encoded(monkeypatch)
    assert torch.equal(cached_features(MODEL, xs, tmp_path), a) and enc.layers == []  # hit
    cached_features(MODEL, [*xs[:5], make_example("changed?", "answer", 1)], tmp_path)  # data changed
    assert enc.texts == [lm_text(make_example("changed?", "answer", 1))]
    assert len(list(tmp_path.glob("features-*"))) == 1 and len(chunks(tmp_path)) == 2
    cached_features(MODEL, xs, tmp_path, pooling="mean")  # pooling changed: another directory
    cached_features(MODEL, xs, tmp_path, max_length=8)  # truncation changed: another directory
    # Model changed: a copy of the model with a different config is another directory.
    other = tmp_path / "other-model"
    shutil.copytree(MODEL, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["n_layer"] = 1
    (other / "config.json").write_text(json.dumps(cfg))
    cached_features(other, xs, tmp_path)
    assert len(list(tmp_path.glob("features-*"))) == 4 and len(enc.texts) == 1 + 3 * 6


class RunsCode:
    """Unpickled with code execution allowed, this makes a folder: what a hostile file could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.mkdir, (str(self.marker),))


def damage(entry: Path, how: str, marker: Path) -> None:
    chunk = torch.load(entry, weights_only=True)
    if how == "cut short":
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    elif how == "random bytes":
        entry.write_bytes(os.urandom(4096))
    elif how == "a pickle that runs code":
        torch.save(RunsCode(marker), entry)
    elif how == "not features":
        torch.save(torch.zeros(3, 2), entry)  # a tensor, not a chunk
    elif how == "wrong shape":
        torch.save({**chunk, "features": chunk["features"][:1]}, entry)
    elif how == "another width":  # well formed, but not this layer's features
        torch.save({**chunk, "features": torch.zeros(len(chunk["keys"]), 3)}, entry)
    else:  # another chunk's file under this one's name
        torch.save({**chunk, "keys": chunk["keys"].flip(0)}, entry)


@pytest.mark.parametrize(
    "how",
    [
        "cut short",
        "random bytes",
        "a pickle that runs code",
        "not features",
        "wrong shape",
        "another width",
        "renamed",
    ],
)
def test_a_damaged_feature_cache_entry_is_named_deleted_and_computed_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    xs = rows(6)
    good = cached_features(MODEL, xs, tmp_path, batch_size=2, chunk_rows=2)
    entry = chunks(tmp_path)[1]
    marker = tmp_path / "code-ran"
    damage(entry, how, marker)
    enc = Encoded(monkeypatch)
    with caplog.at_level("WARNING", logger="w2sg.features"):
        again = cached_features(MODEL, xs, tmp_path, batch_size=2)
    assert torch.equal(again, good) and not marker.exists()
    assert f"{entry}: damaged feature cache entry" in caplog.text
    assert len(enc.texts) == 2  # only the damaged chunk's rows
    chunk = torch.load(entry, weights_only=True)  # recomputed in its place
    assert entry.name == chunk_name(unpack_keys(chunk["keys"])) and len(chunks(tmp_path)) == 3


def test_feature_layers_are_cached_one_directory_each_and_concatenated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xs = rows(6)
    last = cached_features(MODEL, xs, tmp_path)  # the default: the last layer
    enc = Encoded(monkeypatch)
    both = cached_features(MODEL, xs, tmp_path, layers=[1, -1])  # one pass computes layer 1 only
    assert enc.layers == [[1]] and len(list(tmp_path.glob("features-*"))) == 2
    assert both.shape == (6, 2 * last.shape[1])
    assert torch.equal(both[:, last.shape[1] :], last)  # concatenated in the order given
    assert not torch.equal(both[:, : last.shape[1]], last)  # layer 1 is another representation
    assert torch.equal(cached_features(MODEL, xs, tmp_path, layers=[1]), both[:, : last.shape[1]])
    more = cached_features(MODEL, [*xs, *rows(2, start=6)], tmp_path, layers=[1, -1])  # new rows: one pass
    assert enc.layers == [[1], [1, -1]] and torch.equal(more[:6], both)
    with pytest.raises(ValueError, match="layer 9 is out of range"):
        cached_features(MODEL, xs, tmp_path, layers=[9])
