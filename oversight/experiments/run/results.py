"""Result records of `w2sg run`, apart from the runner and the report, which both import them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from oversight.labelling.judges import JudgeInfo
from oversight.labelling.open_sides import OpenSides
from w2sg.metrics import Estimate, LabelQuality
from w2sg.results import ExperimentResult


class SourceReport(BaseModel):
    source: str
    kind: Literal["teacher", "oversight", "aggregate"]
    raw: LabelQuality = Field(description="labels on the strong split against gold")
    calibrated: LabelQuality | None = None
    tokens_per_label: Estimate | None = Field(
        None, description="every model call of the graph, judge included"
    )
    seconds_per_label: Estimate | None = Field(None, description="model time per label (not wall time)")
    usd_per_label: Estimate | None = Field(None, description="from the models' `price:`, when given")
    judge: JudgeInfo | None = None
    vs_blind: Estimate | None = Field(
        None, description="label accuracy minus the blind judge's, paired over the same strong rows"
    )
    vs_blind_p: float | None = Field(
        None, description="two-sided p of vs_blind by a paired permutation test (questions' signs flipped)"
    )
    note: str | None = Field(None, description="a warning about how this source was made")
    open_sides: OpenSides | None = Field(
        None,
        description="sides: open: the protagonist's choice on the strong split, judge accuracy split by it",
    )
    methods: dict[str, int] = Field(
        default_factory=dict, description="verdicts per scoring method (logprobs, echo, sampled, ...)"
    )
    failed: list[str] = Field(default_factory=list, description="rows left without a label after retries")
    usage: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="per role: calls, retries, timeouts, failures, ... of this run"
    )


class PipelineResult(BaseModel):
    run_id: str
    experiment: ExperimentResult
    sources: list[SourceReport]
    stage_seconds: dict[str, float]
    passage_questions: int | None = Field(
        None,
        description="questions with a passage in the test file: what the graph splits draw from when "
        "the data has passages (None: it has none, and they draw from every test-file question)",
    )
    dropped_questions: list[str] = Field(
        default_factory=list, description="on_failure: drop: questions left out of every source"
    )
