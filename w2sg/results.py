"""Result records of the training-core runners, kept apart so that runners and reports both
import them one way (runner → report → results)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from w2sg.ensembles import EnsembleResult
from w2sg.metrics import Estimate, LabelQuality


class StudentResult(BaseModel):
    source: str
    loss: str
    accuracy: Estimate
    pgr: Estimate
    best_step: int
    accuracy_dev: Estimate | None = Field(None, description="accuracy on the dev split, when there is one")
    pgr_dev: Estimate | None = Field(None, description="PGR on the dev split (all three paired)")


class SourceResult(BaseModel):
    source: str
    floor: Estimate = Field(description="the supervisor's own accuracy (see floor_split)")
    floor_split: str
    labels: LabelQuality = Field(description="quality of the labels on the strong split")
    floor_dev: Estimate | None = Field(None, description="the supervisor's accuracy on the dev split")


class ExperimentResult(BaseModel):
    run_id: str
    ceiling: Estimate
    ceiling_dev: Estimate | None = Field(None, description="the ceiling on the dev split, when there is one")
    sources: list[SourceResult]
    students: list[StudentResult]
    ensembles: list[EnsembleResult] = Field(default_factory=list)
    sizes: dict[str, int]
    seconds: float


class ICLRow(BaseModel):
    selector: str
    source: str
    confidence: bool
    accuracy: Estimate
    auc: float = Field(description="threshold-free: P(a true row scores above a false one)")
    mean_p: float = Field(description="mean p('1'): far from the true share means a biased model")
    demo_label_accuracy: float | None = Field(description="share of demo labels that agree with gold")
    prompt_tokens: int
    seconds: float


class ICLResult(BaseModel):
    run_id: str
    model: str
    k: int
    sizes: dict[str, int]
    source_accuracy: dict[str, float] = Field(description="each source's label accuracy on the demo pool")
    rows: list[ICLRow]
    seconds: float
