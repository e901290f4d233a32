"""Result records of `w2sg ladder`, apart from the runner and the report, which both import them."""

from __future__ import annotations

from pydantic import BaseModel, Field

from w2sg.metrics import Estimate, LabelQuality


class RungResult(BaseModel):
    rung: int
    model: str
    arm: str = Field(description="recursive | baseline | oversight; `gold` for rung 0")
    labels_from: str
    labels: LabelQuality | None = Field(description="the student's training labels vs gold on its rows")
    disagree_rung0: float | None = Field(description="share of those labels whose side differs from rung 0's")
    floor: Estimate | None = Field(description="the supervisor's own accuracy (see floor_split)")
    floor_split: str
    student: Estimate = Field(description="test accuracy of this rung's student (rung 0: the evaluator)")
    ceiling: Estimate = Field(description="test accuracy of this rung's model trained on gold of its rows")
    pgr: Estimate | None
    best_step: int
    same_as: str | None = Field(description="an arm with identical labels whose student this is")


class LadderResult(BaseModel):
    run_id: str
    rungs: list[str]
    arms: list[str]
    results: list[RungResult]
    sizes: dict[str, int]
    seconds: float
