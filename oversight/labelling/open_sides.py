"""Open sides (a debate's `sides: open`, Kenton et al. 2024): how often the protagonist chose the
side gold supports, and the judge's accuracy split by that choice, from the `choice` turn each
label's transcript records. One computation for `w2sg label` and the run report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field

from w2sg.metrics import Estimate, correct, mean_ci


class OpenSides(BaseModel):
    """The protagonist's choice against gold, and the judge's accuracy on the rows where it chose
    the gold side (`judge_chose_right`) and where it did not (`judge_chose_wrong`; None: no rows)."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    choice_accuracy: Estimate = Field(description="the protagonist chose the side gold supports")
    judge_chose_right: Estimate | None = None
    judge_chose_wrong: Estimate | None = None
    n: int = Field(description="rows with a recorded choice")

    def lines(self) -> list[str]:
        """What a person reads: one line of choice accuracy and the judge's split."""

        def cell(e: Estimate | None) -> str:
            return "-" if e is None else f"{e} ({e.n} rows)"

        return [
            f"protagonist chose the gold side {self.choice_accuracy} (95% CI, {self.n} rows); judge accuracy "
            f"when it chose right {cell(self.judge_chose_right)}, when it chose wrong "
            f"{cell(self.judge_chose_wrong)}"
        ]


def chosen_side(record: Mapping[str, Any]) -> str | None:
    """The side the protagonist chose in one label's record (None: no choice turn, assigned sides)."""
    return next((t.get("side") for t in record.get("transcript", []) if t.get("kind") == "choice"), None)


def open_sides(
    records: Sequence[Mapping[str, Any]],
    probs: ArrayLike,
    gold: ArrayLike,
    groups: ArrayLike | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> OpenSides | None:
    """The split over the rows whose record holds a choice (rows aligned with `probs`, `gold` and
    `groups`, the question of each row: intervals resample questions); None when none does."""
    sides = [chosen_side(r) for r in records]
    keep = np.array([s is not None for s in sides])
    if not keep.any():
        return None
    p, g = np.asarray(probs, dtype=float)[keep], np.asarray(gold, dtype=float)[keep]
    q = None if groups is None else np.asarray(groups)[keep]
    # Choosing "correct" is right exactly when the answer under test is the gold answer.
    right = np.array([s == "correct" for s in sides if s is not None]) == (g > 0.5)
    judge_ok = correct(p, g)

    def on(mask: np.ndarray) -> Estimate | None:
        if not mask.any():
            return None
        return mean_ci(judge_ok[mask], None if q is None else q[mask], n_boot=n_boot, seed=seed)

    return OpenSides(
        choice_accuracy=mean_ci(right.astype(float), q, n_boot=n_boot, seed=seed),
        judge_chose_right=on(right),
        judge_chose_wrong=on(~right),
        n=int(keep.sum()),
    )
