"""Shared timing helper: baseline and ours alternate, so machine drift hits both alike."""

from __future__ import annotations

import statistics
from collections.abc import Callable


def interleaved_medians(rounds: int, *measures: Callable[[], float]) -> list[float]:
    """Run each measure once to warm up, then `rounds` times in turn; the median of each."""
    for m in measures:
        m()
    samples: list[list[float]] = [[] for _ in measures]
    for _ in range(rounds):
        for s, m in zip(samples, measures, strict=True):
            s.append(m())
    return [statistics.median(s) for s in samples]
