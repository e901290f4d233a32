"""Labelling progress in TensorBoard / wandb: `tracking:` of `w2sg label` (`w2sg.tracking`).

A labelling run logs, under its protocol's name, running figures every few rows (at most
`POINTS` points a run, so a long run stays light): rows done (those already in the store
included, so a resumed run continues its curves), rows failed, rows/s, tokens and cost of the
models' live calls, the mean p(true) and the label accuracy against gold so far; at the end the
run's counts and the label quality the command prints (accuracy with its interval, ECE, Brier).
Its curves go in a folder beside the store, one per store, protocol and config hash.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from w2sg.tracking import Tracker

if TYPE_CHECKING:
    from agents import Model
    from oversight.labelling.store import LabelRow

#: the most progress points one run logs (rows are grouped to fit)
POINTS = 500


def tracking_dir(store: Path, protocol: str, config_hash: str) -> Path:
    """Where a labelling run's curves go: `<store dir>/<store stem>-<protocol>-<hash>/` (its
    `tensorboard/`, `wandb/`; a `tracking.tensorboard` path gets a folder of this name)."""
    return store.parent / f"{store.stem}-{protocol}-{config_hash}"


def spent(models: Mapping[str, Model]) -> dict[str, float]:
    """Tokens and cost of the models' live calls so far (cached calls cost nothing)."""
    usage = [m.usage for m in models.values()]
    return {
        "tokens": float(sum(u.input_tokens + u.output_tokens for u in usage)),
        "cost_usd": float(sum(u.cost_usd for u in usage)),
    }


class LabelProgress:
    """Running figures of one labelling run, logged every `every` rows and at `flush`."""

    def __init__(self, tracker: Tracker, protocol: str, *, start: int, todo: int):
        self.tracker, self.protocol, self.start = tracker, protocol, start
        self.every = max(1, -(-todo // POINTS))
        self.done = self.failed = self.scored = 0
        self.p_sum = self.right = 0.0
        self.logged_at = 0
        self.t0 = time.perf_counter()

    def row(self, row: LabelRow, gold: int, models: Mapping[str, Model]) -> None:
        """One row's verdict (or failure), against its gold label."""
        self.done += 1
        if row.p_true is None:
            self.failed += 1
        else:
            self.scored += 1
            self.p_sum += row.p_true
            # as w2sg.metrics.correct: both thresholded at 0.5
            self.right += float((row.p_true > 0.5) == (gold > 0.5))
        if self.done % self.every == 0:
            self.flush(models)

    def flush(self, models: Mapping[str, Model]) -> None:
        """Log the figures now (a run's last rows, whatever `every` is)."""
        if self.done == self.logged_at:  # nothing new (or logged at the last row already)
            return
        seconds = max(time.perf_counter() - self.t0, 1e-9)
        metrics = {
            "rows_done": float(self.start + self.done),
            "rows_failed": float(self.failed),
            "rows_per_s": self.done / seconds,
            **spent(models),
        }
        if self.scored:
            metrics |= {"mean_p_true": self.p_sum / self.scored, "accuracy": self.right / self.scored}
        self.tracker.log(self.protocol, self.start + self.done, metrics)
        self.logged_at = self.done
