"""`RunConfig`: what `w2sg run` reads: sizes, the oversight graphs, judge training, the W2SG core."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents import ModelSpec
from graphs.config import DebateConfig
from graphs.interaction import InteractionConfig
from oversight.judges import GraphConfig
from oversight.label import check_model_names, graph_models
from w2sg.ensembles import EnsembleConfig
from w2sg.experiment import WEAK, W2SGConfig
from w2sg.models import ModelConfig
from w2sg.run_folder import run_id
from w2sg.train import TrainConfig

TRAINED = "trained"  # as a graph's judge / overseer_model: train a judge here on the `judge` split
GRAPH_SPLITS = ("calib", "strong", "val")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunSizes(Config):
    """Questions per split (two rows each). judge, calib, strong and val need support passages."""

    judge: int = Field(
        150, ge=2, description="gold for every weak supervisor: trained judges and weak teachers"
    )
    calib: int = Field(50, ge=2, description="gold for calibrating and weighting label sources")
    strong: int = Field(200, ge=1, description="labelled by every source; the students learn from it")
    val: int = Field(50, ge=1, description="labelled by every source; student selection")
    test: int = Field(
        500, ge=1, description="student test questions (from the train file: no passage needed)"
    )


class OversightSource(Config):
    """One label source made by an oversight graph: give `debate:` (any protocol) or `interaction:`.
    A judge (or overseer_model) named `trained` is fine-tuned here on the `judge` split."""

    debate: DebateConfig | None = None
    interaction: InteractionConfig | None = None

    @model_validator(mode="after")
    def _one(self) -> OversightSource:
        if (self.debate is None) == (self.interaction is None):
            raise ValueError("give exactly one of `debate:` or `interaction:`")
        if self.interaction is not None and self.interaction.overseer == "human":
            raise ValueError("a human overseer labels through `w2sg human`, not inside `w2sg run`")
        if _needs_judge(self.graph) and getattr(self.graph, "max_followups", 0):
            raise ValueError("a trained overseer cannot ask follow-ups: use max_followups: 0")
        return self

    @property
    def graph(self) -> GraphConfig:
        return self.debate if self.debate is not None else self.interaction  # type: ignore[return-value]


class JudgeTraining(Config):
    base: str = Field("embedded/minilm", description="classifier fine-tuned as each trained judge")
    max_length: int = Field(160, ge=16, description="tokens per (claim, transcript) pair")
    # Chosen on held-out judge-training questions: at lr 5e-5 for 3 epochs the judges stayed at
    # chance (loss 0.69); 1e-4 for 5 epochs learns.
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(
            lr=1e-4, epochs=5, batch_size=16, eval_every=15, warmup_frac=0.1, device="cpu"
        )
    )


class RunConfig(Config):
    name: str = "run"
    seed: int = 0
    dataset: str = "sciq"
    data_dir: Path | None = None
    sizes: RunSizes = Field(default_factory=RunSizes)
    models: dict[str, ModelSpec] = Field(default_factory=dict, description="named specs the graphs refer to")
    protocols: dict[str, OversightSource] = Field(description="label source name → oversight graph")
    judge_training: JudgeTraining = Field(default_factory=JudgeTraining)
    weak: ModelConfig
    weak_train: TrainConfig = Field(default_factory=TrainConfig)
    strong: ModelConfig
    strong_train: TrainConfig = Field(default_factory=TrainConfig)
    ensembles: list[EnsembleConfig] = Field(default_factory=list)
    losses: list[Literal["xent", "logconf", "product"]] = Field(default_factory=lambda: ["xent"])
    select_on: Literal["source", "gold"] = "source"
    calibration: Literal["temperature", "platt", "isotonic"] | None = Field(
        "platt", description="fit per source on the calib split; None: raw p(true) everywhere"
    )
    student_labels: Literal["raw", "calibrated"] = Field(
        "raw", description="what students learn from (the report shows both label qualities)"
    )
    aggregate: list[Literal["average", "dawid_skene"]] = Field(
        default_factory=list,
        description="extra sources combining every other one: skill-weighted average of calibrated "
        "p(true) (weights scored out of fold on calib), or a Dawid-Skene label model",
    )
    folds: int = Field(
        5, ge=2, description="cross-fitting folds over calib questions for the average's skill weights"
    )
    concurrency: int = Field(32, ge=1, description="graphs in flight while labelling")
    n_boot: int = Field(1000, ge=100)
    out_dir: Path = Path("runs")
    cache_dir: Path = Path("runs/cache")

    @model_validator(mode="after")
    def _names(self) -> RunConfig:
        names = [
            WEAK,
            *(e.source for e in self.ensembles),
            *self.protocols,
            *(f"agg_{a}" for a in self.aggregate),
        ]
        if len(set(names)) != len(names):
            raise ValueError(f"label source names must be unique: {names}")
        for source, src in self.protocols.items():
            check_model_names(graph_models(src.graph), self.models, f"protocols.{source}.", also=(TRAINED,))
        return self

    def run_id(self, data: str) -> str:
        """The run folder's name, from this config and the fingerprint of the data it runs on."""
        return run_id(self.name, self, data, exclude=frozenset({"concurrency"}))

    def w2sg(self) -> W2SGConfig:
        """The training core's view of this run (weak teachers, students, ceiling)."""
        keys = ("name", "seed", "weak", "weak_train", "strong", "strong_train", "ensembles", "losses")
        return W2SGConfig(
            **{k: getattr(self, k) for k in keys},
            select_on=self.select_on,
            n_boot=self.n_boot,
            out_dir=self.out_dir,
            cache_dir=self.cache_dir,
            label_sources=[WEAK, *(e.source for e in self.ensembles)],
        )


def _needs_judge(graph: GraphConfig) -> bool:
    if isinstance(graph, InteractionConfig):
        return graph.overseer == "model" and graph.overseer_model == TRAINED
    return graph.judge == TRAINED
