"""Simulated human overseers for sandwiching-style sweeps without people (Bowman et al. 2022).

A simulated overseer knows the truth only as well as its `accuracy`, may lapse (a coin flip),
may defer to the assistant's stated stance, and reads only `reading_budget` words of the
transcript. Every draw is seeded per item, so a sweep is reproducible and order-free.

Per item, in order: a lapse (prob. `lapse_rate`) gives a coin-flip answer; otherwise, if the
assistant's stance is within the words read, the overseer adopts it with prob. `deference`;
otherwise it answers from its own knowledge, right with prob. `accuracy`. The verdict is
`confidence` (or 1 − confidence) on the chosen answer.
"""

from __future__ import annotations

import hashlib
import random
import re

from pydantic import ConfigDict, Field

from agents.config import Config

STANCE = re.compile(r"\bSTANCE:\s*(correct|incorrect)\b", re.I)


class SimulatedOverseer(Config):
    model_config = ConfigDict(frozen=True)

    accuracy: float = Field(0.7, ge=0, le=1, description="right on its own this often")
    lapse_rate: float = Field(0.0, ge=0, le=1, description="attention lapses: a coin flip instead")
    deference: float = Field(0.5, ge=0, le=1, description="adopts the assistant's stance this often")
    reading_budget: int | None = Field(None, ge=0, description="words of the transcript read; None: all")
    confidence: float = Field(0.9, ge=0.5, le=1, description="p(true) given to the answer chosen")
    seed: int = 0


def assistant_stance(transcript: str, budget: int | None) -> bool | None:
    """The stance the assistant states ("STANCE: correct|incorrect") within the words read."""
    words = transcript.split()
    read = " ".join(words if budget is None else words[:budget])
    m = STANCE.search(read)
    return None if m is None else m.group(1).lower() == "correct"


def simulate_verdict(sim: SimulatedOverseer, item_id: str, gold: bool, transcript: str) -> tuple[float, str]:
    """(p(true), how it was decided: lapse | defer | own)."""
    rng = random.Random(int(hashlib.sha256(f"{sim.seed}|{item_id}".encode()).hexdigest()[:12], 16))
    lapse, defer, own, coin = rng.random(), rng.random(), rng.random(), rng.random()
    if lapse < sim.lapse_rate:
        choice, how = coin < 0.5, "lapse"
    else:
        stance = assistant_stance(transcript, sim.reading_budget)
        if stance is not None and defer < sim.deference:
            choice, how = stance, "defer"
        else:
            choice, how = (gold if own < sim.accuracy else not gold), "own"
    return (sim.confidence if choice else 1 - sim.confidence), how
