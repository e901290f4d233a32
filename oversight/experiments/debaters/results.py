"""The records of `w2sg debaters train`: a round's figures and the run's result."""

from __future__ import annotations

from pydantic import BaseModel, Field

from oversight.experiments.debaters.dpo import DPOFigures


class RoundFigures(BaseModel):
    round: int
    questions: int
    turns: int = Field(description="best-of-N turns debated")
    pairs: int = Field(description="turns whose best candidate the judge preferred to the worst")
    debate_seconds: float | None = Field(description="None: the pairs were read from an earlier run")
    dpo: DPOFigures
    model: str = Field(description="the trained debater, as any config names it: hf/<run>/model-rK")
    adapter: str = Field(description="the LoRA adapter on the round's starting model")


class DebaterTrainResult(BaseModel):
    run_id: str
    rounds: list[RoundFigures]
