"""Shards `i/n` of a job spread over machines (`w2sg grid --shard`, `w2sg label --shard`): which
items a shard takes, and where a labelling shard keeps its own store (SQLite must not be shared
over a network file system, so each shard writes its own file and a merge joins them)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def parse(spec: str) -> tuple[int, int]:
    """(i, n) of `i/n`, 1-based (`$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT` with a 1-based array)."""
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard {spec!r}: expected i/n, e.g. 2/8") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard {spec!r}: i must be in 1..{n}")
    return i, n


def pick(items: Sequence[T], spec: str | None) -> list[T]:
    """The items of shard `i/n`: every n-th from the i-th, so shards are disjoint, cover the
    items, and each gets a mix of them. None: all."""
    if spec is None:
        return list(items)
    i, n = parse(spec)
    return list(items[i - 1 :: n])


def store_path(store: Path, spec: str) -> Path:
    """Shard `i/n`'s own store beside `store`: `labels.sqlite` → `labels.shard-2-of-8.sqlite`."""
    i, n = parse(spec)
    return store.with_name(f"{store.stem}.shard-{i}-of-{n}{store.suffix}")


def store_paths(store: Path) -> tuple[int, dict[int, Path]]:
    """The shard stores beside `store`: their count n and those present by i. Raises when there
    are none, or shards of two different counts."""
    pattern = re.compile(rf"{re.escape(store.stem)}\.shard-(\d+)-of-(\d+){re.escape(store.suffix)}")
    found: dict[int, dict[int, Path]] = {}
    if store.parent.is_dir():
        for p in sorted(store.parent.iterdir()):
            if (m := pattern.fullmatch(p.name)) is not None:
                found.setdefault(int(m.group(2)), {})[int(m.group(1))] = p
    if not found:
        run = "run `w2sg label --shard i/n` first"
        raise ValueError(f"{store.parent}: no shard stores of {store.name}; {run}")
    if len(found) > 1:
        counts = ", ".join(f"{n} ({len(v)} present)" for n, v in sorted(found.items()))
        raise ValueError(
            f"{store.parent}: shard stores of {store.name} from runs split different ways: of {counts}; "
            "move aside the ones of the split not to merge"
        )
    ((n, paths),) = found.items()
    return n, paths
