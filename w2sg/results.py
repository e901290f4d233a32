"""Result records of the training-core runners, kept apart so that runners and reports both
import them one way (runner → report → results)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from w2sg.ensembles import EnsembleResult
from w2sg.metrics import Estimate, LabelQuality

#: The method of every student trained before methods existed (`w2sg.methods.VANILLA`).
VANILLA = "vanilla"


def student_key(source: str, loss: str, method: str = VANILLA) -> str:
    """A student's column in predictions.npz; a vanilla student's is the one it had before methods."""
    return f"student__{source}__{loss}" + ("" if method == VANILLA else f"__{method}")


class StudentName(BaseModel):
    """Who a student is: its label source, loss and W2SG method (`w2sg.methods`)."""

    source: str
    loss: str
    # Defaulted, so that results.json files written before methods existed still load.
    method: str = Field(VANILLA, description="the W2SG method that made its labels (w2sg.methods)")

    @property
    def trained(self) -> str:
        """Its loss, and its method unless vanilla: `xent`, `xent · probe_filter`."""
        return self.loss if self.method == VANILLA else f"{self.loss} · {self.method}"

    @property
    def key(self) -> str:
        return student_key(self.source, self.loss, self.method)


class StudentResult(StudentName):
    accuracy: Estimate
    pgr: Estimate
    best_step: int
    accuracy_dev: Estimate | None = Field(None, description="accuracy on the dev split, when there is one")
    pgr_dev: Estimate | None = Field(None, description="PGR on the dev split (all three paired)")
    # Optional, so results.json files written before they existed still load.
    auc: Estimate | None = Field(None, description="ROC AUC on test")
    auc_pgr: Estimate | None = Field(
        None, description="PGR on AUC (EleutherAI/w2s): (student − floor) / (ceiling − floor) of the AUCs"
    )
    auc_dev: Estimate | None = Field(None, description="ROC AUC on the dev split")
    auc_pgr_dev: Estimate | None = Field(None, description="PGR on AUC on the dev split")
    collapsed: str | None = Field(
        None,
        description="why the student collapsed, if it did: indistinguishable from chance or from a "
        "constant predictor on test (`w2sg.report.chance_reason`), or val predictions that agree with "
        "its own labels no more than chance",
    )
    rows: int | None = Field(None, description="strong rows it trained on, when its method kept a subset")


class SourceResult(BaseModel):
    source: str
    floor: Estimate = Field(description="the supervisor's own accuracy (see floor_split)")
    floor_split: str
    labels: LabelQuality = Field(description="quality of the labels on the strong split")
    floor_dev: Estimate | None = Field(None, description="the supervisor's accuracy on the dev split")
    floor_auc: Estimate | None = Field(None, description="the supervisor's ROC AUC (on floor_split)")
    floor_auc_dev: Estimate | None = Field(None, description="the supervisor's ROC AUC on the dev split")
    # Chance flags (`w2sg.report.chance_reason`): None when not at chance, or in a results.json
    # written before the flags existed.
    floor_chance: str | None = Field(
        None, description="why its floor (on floor_split) is indistinguishable from chance or a constant"
    )
    floor_chance_dev: str | None = Field(None, description="the same of its floor on the dev split")
    labels_chance: str | None = Field(
        None, description="the same of its labels on the strong split (what the students learn from)"
    )


class ExperimentResult(BaseModel):
    run_id: str
    ceiling: Estimate
    ceiling_dev: Estimate | None = Field(None, description="the ceiling on the dev split, when there is one")
    ceiling_auc: Estimate | None = Field(None, description="the ceiling's ROC AUC on test")
    ceiling_auc_dev: Estimate | None = Field(None, description="the ceiling's ROC AUC on the dev split")
    ceiling_chance: str | None = Field(
        None, description="why the ceiling is indistinguishable from chance or a constant on test"
    )
    ceiling_chance_dev: str | None = Field(None, description="the same on the dev split")
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


class SeedStat(BaseModel):
    """One figure over seeds: the mean of the per-seed figures with its 95% interval from a
    two-level bootstrap (seeds with replacement, then each drawn seed's questions), the standard
    deviation between seeds (nan for one seed), and each seed's figure."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    mean: Estimate
    sd: float
    per_seed: list[float]


class SeedsSource(BaseModel):
    source: str
    floor_split: str = Field(description="test, or strong for a supervisor with no test predictions")
    floor: SeedStat
    floor_auc: SeedStat


class SeedsStudent(StudentName):
    accuracy: SeedStat
    auc: SeedStat
    pgr: Estimate = Field(description="PGR of the seed-mean accuracies, its interval from the same draws")
    auc_pgr: Estimate = Field(description="PGR of the seed-mean AUCs")
    collapsed: dict[int, str] = Field(default_factory=dict, description="seed → why its student collapsed")


class SeedRun(BaseModel):
    seed: int
    result: ExperimentResult = Field(description="the seed's own run, with its per-question intervals")


class SeedsResult(BaseModel):
    run_id: str
    seeds: list[int]
    runs: list[SeedRun]
    ceiling: SeedStat
    ceiling_auc: SeedStat
    sources: list[SeedsSource]
    students: list[SeedsStudent]
    n_boot: int
    seconds: float
