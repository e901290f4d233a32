"""The ladder's config (`w2sg ladder CONFIG`) and its data splits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from agents.config import Config
from w2sg.config import Experiment
from w2sg.data import Example, split_by_question
from w2sg.datasets import DatasetSpec, dataset_field, load_split, train_pool
from w2sg.models import ModelConfig
from w2sg.synthetic import SyntheticModel, synthetic_rows
from w2sg.tracking import TrackingConfig, tracking_field
from w2sg.train import TrainConfig

SYNTHETIC = "synthetic"
#: Test questions of the synthetic task when `test` is not set.
SYNTHETIC_TEST = 500
ARMS = ("recursive", "baseline", "oversight")


class Rung(Config):
    name: str = Field(min_length=1)
    questions: int = Field(
        ge=1, description="rung 0: gold (human) questions; rung k ≥ 1: questions its student learns from"
    )
    model: Annotated[ModelConfig | SyntheticModel, Field(discriminator="kind")]
    train: TrainConfig = Field(default_factory=TrainConfig)


class OversightArm(Config):
    column: str = Field(description="a p(true) column of the data, e.g. weak_p_true_with_support")
    weight: float = Field(
        0.5, gt=0, le=1, description="the column's share of each label; 1 replaces the evaluator's"
    )


class LadderConfig(Experiment):
    name: str = "ladder"
    seed: int = 0
    # `synthetic`: generated rows whose models are views of one hidden variable (tests, benchmarks).
    dataset: Literal["synthetic"] | DatasetSpec = dataset_field()
    val: int = Field(200, ge=1, description="questions for model selection")
    test: int | None = Field(None, ge=1, description="test questions; None = all")
    rungs: list[Rung] = Field(min_length=2, description="weakest first")
    baseline: bool = Field(True, description="also train every student on rung 0's labels")
    oversight: OversightArm | None = Field(None, description="the oversight-assisted evaluator arm")
    n_boot: int = Field(1000, ge=100)
    out_dir: Path = Path("runs")
    cache_dir: Path = Path("runs/cache")
    tracking: TrackingConfig = tracking_field()

    ID_EXCLUDE: ClassVar[dict[str, Any]] = {"tracking": True}  # w2sg.identity: curves change no result

    @model_validator(mode="after")
    def _rungs(self) -> LadderConfig:
        names = [r.name for r in self.rungs]
        if len(set(names)) != len(names):
            raise ValueError(f"rungs: names must be unique, got {names}")
        for k, r in enumerate(self.rungs):
            if (r.model.kind == SYNTHETIC) != (self.dataset == SYNTHETIC):
                raise ValueError(
                    f"rungs.{k}.model.kind: {r.model.kind!r} does not fit dataset {self.dataset!r} "
                    "(synthetic models go with dataset: synthetic, and only with it)"
                )
        return self

    def arms(self) -> list[str]:
        return [a for a in ARMS if a == "recursive" or getattr(self, a)]


def slice_name(k: int) -> str:
    return f"rung{k}"


def ladder_splits(cfg: LadderConfig) -> dict[str, list[Example]]:
    """Disjoint question splits `rung0` (gold), `rung1`, …, `val`, plus `test`."""
    sizes = {slice_name(k): r.questions for k, r in enumerate(cfg.rungs)} | {"val": cfg.val}
    if cfg.dataset == SYNTHETIC:
        pool = synthetic_rows(sum(sizes.values()), cfg.seed, "pool")
        test = synthetic_rows(cfg.test or SYNTHETIC_TEST, cfg.seed, "test")
    else:
        train = load_split(cfg.dataset, "train", seed=cfg.seed)
        test = load_split(cfg.dataset, "test", seed=cfg.seed)
        pool = train_pool(train, {e.qid for e in test}, cfg.dataset.title)
    splits = split_by_question(pool, sizes, seed=cfg.seed)
    splits["test"] = split_by_question(test, {"test": cfg.test}, seed=cfg.seed)["test"] if cfg.test else test
    return splits
