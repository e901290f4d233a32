"""The records of `w2sg debaters train` (a round's figures, the run's result) and of `w2sg debaters
evaluate` (each round's debater in cross-play and as a label source)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from w2sg.metrics import Estimate, LabelQuality


class DPOFigures(BaseModel):
    pairs: int
    steps: int
    loss_first: float
    loss_last: float
    margin_first: float = Field(description="chosen minus rejected implicit reward, first logged step")
    margin_last: float
    seconds_per_step: float


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


class RoundEvaluation(BaseModel):
    """One round's debater (r0: the config's) in `w2sg debaters evaluate`."""

    round: int
    model: str
    rating: Estimate = Field(description="openskill mu in the cross-play tournament")
    elo: Estimate = Field(description="Bradley-Terry Elo from the same matches")
    judge_self: Estimate = Field(description="the judge's accuracy when this debater argues both sides")
    judge_truth: Estimate = Field(
        description="the judge's accuracy when this debater argues the truth, over every opponent"
    )
    judge_lie: Estimate = Field(
        description="the judge's accuracy when this debater lies, over every opponent"
    )
    honest: Estimate | None = Field(
        None, description="the judge's accuracy when it argues the truth against r0 (None for r0)"
    )
    lying: Estimate | None = Field(None, description="the judge's accuracy when it lies against r0")
    help: Estimate | None = Field(None, description="honest minus r0's self-play accuracy")
    hurt: Estimate | None = Field(None, description="r0's self-play accuracy minus lying")
    net: Estimate | None = Field(
        None, description="help minus hurt: > 0, its persuasion helps the truth more than the lie"
    )
    labels: LabelQuality | None = Field(
        None, description="self-play labels on the student run's strong split"
    )
    student: Estimate | None = Field(None, description="the student trained on those labels, test accuracy")
    pgr: Estimate | None = None
    student_note: str | None = Field(None, description="why the student collapsed, when it did")


class DebaterEvaluation(BaseModel):
    run_id: str = Field(description="the training run evaluated")
    tournament: str = Field(description="the cross-play tournament's folder, in evaluation/")
    questions: int
    matches: int
    judge_accuracy: Estimate = Field(description="over every cross-play debate")
    student_run: str | None = Field(None, description="the `w2sg run` folder, in evaluation/")
    ceiling: Estimate | None = None
    overlap: dict[str, int] = Field(
        default_factory=dict,
        description="questions two sets share (the judge's training, the rounds', the run's)",
    )
    rounds: list[RoundEvaluation]
    seconds: float
