"""`RunConfig`: what `w2sg run` reads: sizes, the oversight graphs, judge training, the W2SG core."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from agents import ModelSpec
from agents.config import HOW_FIELDS, Config
from agents.names import check_model_names
from graphs.kinds import AnyGraph
from oversight.labelling.judges import judge_train_config
from w2sg.config import first_error
from w2sg.data import Size
from w2sg.experiment import WEAK, W2SGCore
from w2sg.methods import VANILLA
from w2sg.train import TrainConfig

TRAINED = "trained"  # as a graph's judge / overseer_model: train a judge here on the `judge` split
GRAPH_SPLITS = ("calib", "strong", "val")


class RunSizes(Config):
    """Questions per split: a count, a share (0.25), or `rest` (what the others leave). judge,
    calib, strong and val are drawn from the test split's questions (only those with a passage when
    the data has passages); test (and dev, drawn after it) from the train split's other questions
    (no passage needed)."""

    judge: Size = Field(150, description="gold for every weak supervisor: trained judges and weak teachers")
    calib: Size = Field(50, description="gold for calibrating and weighting label sources")
    strong: Size = Field(200, description="labelled by every source; the students learn from it")
    val: Size = Field(50, description="labelled by every source; student selection")
    test: Size = Field(500, description="student test questions (from the train split: no passage needed)")
    dev: Size | None = Field(
        None,
        description="held-out train-file questions, disjoint from test, on which the ceiling, every "
        "weak teacher and every student are scored too; no model trains or selects on them: choose "
        "settings here, not on test",
    )

    ID_NEUTRAL: ClassVar[dict[str, Any]] = {"dev": None}  # w2sg.identity: as before dev existed


class JudgeTraining(Config):
    base: str = Field("embedded/minilm", description="classifier fine-tuned as each trained judge")
    max_length: int = Field(160, ge=16, description="tokens per (claim, transcript) pair")
    train: TrainConfig = Field(default_factory=judge_train_config)  # the one that learns

    def model_refs(self) -> dict[str, tuple[str, str]]:
        """field → (name, kind): what `agents.names.check_config_models` resolves."""
        return {"base": (self.base, "path")}


class RunConfig(W2SGCore):
    """`w2sg run`: the W2SG section (`W2SGCore`: data, weak teachers, students, ceiling) plus the
    oversight label sources, the judges trained for them, calibration and aggregation."""

    name: str = "run"
    sizes: RunSizes = Field(default_factory=RunSizes)
    models: dict[str, ModelSpec] = Field(default_factory=dict, description="named specs the graphs refer to")
    protocols: dict[str, AnyGraph] = Field(
        description="label source name → oversight graph (`kind:` debate or interaction); a judge or "
        f"overseer model named `{TRAINED}` is fine-tuned here on the `judge` split"
    )
    judge_training: JudgeTraining = Field(default_factory=JudgeTraining)
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
    on_failure: Literal["fail", "drop"] = Field(
        "fail",
        description="rows a graph leaves unlabelled after retries: fail the run (after every graph has "
        "labelled, naming them; a rerun retries them), or drop their questions from every source's "
        "splits, counted and named in the report",
    )

    # How models are called (retries, timeouts, limits) and the failure policy change no label:
    # a run resumed with longer timeouts, or with `on_failure: drop`, keeps its folder and store.
    ID_EXCLUDE: ClassVar[dict[str, Any]] = {
        **W2SGCore.ID_EXCLUDE,
        "concurrency": True,
        "on_failure": True,
        "models": {"__all__": HOW_FIELDS},
    }
    #: model names a graph may use besides `models:` keys and model strings.
    MODEL_ALIASES: ClassVar[tuple[str, ...]] = (TRAINED,)

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        names = [
            WEAK,
            *(e.source for e in self.ensembles),
            *self.protocols,
            *(f"agg_{a}" for a in self.aggregate),
        ]
        if len(set(names)) != len(names):
            raise ValueError(f"label source names must be unique: {names}")
        if [m.label for m in self.methods] != [VANILLA]:
            # The run report keys students by (source, loss): it would show one method of several.
            raise ValueError(
                "methods: `w2sg run` trains vanilla students only for now; compare methods with "
                "`w2sg train` (docs/methods.md)"
            )
        for source, graph in self.protocols.items():
            where = f"protocols.{source}."
            if graph.needs_person:
                raise ValueError(
                    f"{where[:-1]}: a person gives these verdicts: queue them with `w2sg label` and judge "
                    "them with `w2sg web` (docs/human-studies.md), not in `w2sg run`"
                )
            check_model_names(graph.model_names(where), self.models, also=self.MODEL_ALIASES)
            if graph.judge_model == TRAINED:
                try:  # the copy with its trained judge must be valid too: say so now, not after training
                    graph.with_judge(f"classifier/{TRAINED}")
                except ValueError as e:
                    raise ValueError(f"{where[:-1]} with a trained judge: {first_error(e)}") from None
        return self

    @property
    def label_sources(self) -> list[str]:
        """The weak teachers' label sources (the oversight ones are `protocols`)."""
        return [WEAK, *(e.source for e in self.ensembles)]
