"""A synthetic binary task with a known capability order, for fast ladder tests without real models.

Rows look like binarized SciQ (two per question: one true, one false). A model *view* sees each
row as `signal · s · u + ε`, with s = ±1 the gold label's sign, u a fixed unit direction and
ε ~ N(0, I): a linear head can do no better than Φ(signal), so a view with more signal is more
capable by construction. The noise is drawn per (view, row), so two views err on different rows and
a stronger student can learn past a weaker teacher's mistakes, as W2SG assumes. Every row also
carries an `overseer` p(true) column of known skill, standing in for an oversight label source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from w2sg.config import Config
from w2sg.data import Example, make_example

OVERSEER = "overseer"
#: The overseer column's skill: its hard labels are right with probability Φ(1.0) ≈ 0.84.
OVERSEER_SIGNAL = 1.0


class SyntheticModel(Config):
    """A model that sees synthetic rows through one view; `hidden` picks the head as for `features`."""

    kind: Literal["synthetic"] = Field(description="synthetic: a head on generated features (tests)")
    signal: float = Field(
        gt=0, description="class separation in noise standard deviations; Φ(signal) at best"
    )
    dim: int = Field(16, ge=1, description="feature width; the signal lies along one direction of it")
    hidden: int = Field(0, ge=0, description="0 = linear head, else an MLP of this width")


def _rng(*parts: object) -> np.random.Generator:
    # Seeded by content, not position: a row's numbers do not depend on which other rows exist.
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def synthetic_rows(n_questions: int, seed: int, split: str) -> list[Example]:
    """`n_questions` questions, two rows each, with the `overseer` p(true) column."""
    rows = []
    for i in range(n_questions):
        for label in (1, 0):
            # Built first to learn its id, then again with the overseer's p(true) for that id.
            e = make_example(f"synthetic {split} {seed} q{i}", f"a{label}", label)
            z = OVERSEER_SIGNAL * (2 * label - 1) + _rng("overseer", seed, e.id).standard_normal()
            p = float(1 / (1 + np.exp(-2.0 * z)))
            rows.append(e.model_copy(update={"labels": {OVERSEER: p}}))
    return rows


def synthetic_features(
    rows: Sequence[Example], model: SyntheticModel, *, view: str, seed: int
) -> dict[str, torch.Tensor]:
    """Example id → (dim,) float32 features of `rows` as `view` sees them."""
    u = np.ones(model.dim) / np.sqrt(model.dim)
    out = {}
    for e in rows:
        noise = _rng("view", view, seed, e.id).standard_normal(model.dim)
        x = model.signal * (2 * e.label - 1) * u + noise
        out[e.id] = torch.tensor(x, dtype=torch.float32)
    return out
