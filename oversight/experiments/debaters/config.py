"""`DebaterTrainConfig`: what `w2sg debaters train` reads: the debater model to train, the judge
whose p(side) ranks its best-of-N candidates, the questions, and the DPO settings of each round;
and what `w2sg debaters evaluate` adds (`evaluation:`): the rounds' debaters in cross-play and as
label sources of a student."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from agents.config import ModelRef, ModelSpec, resolve_spec
from agents.names import check_model_names
from graphs.debate import DebateConfig
from oversight.experiments.config import ExperimentConfig
from oversight.experiments.tournament.config import TournamentConfig
from w2sg.config import Config, first_error
from w2sg.tracking import TrackingConfig, tracking_field
from w2sg.train import Precision

if TYPE_CHECKING:
    from oversight.experiments.run.config import RunConfig

#: the debate fields each round sets; the rest of `graph:` is the config's.
PER_ROUND = ("debater", "debaters", "judge", "seed")
#: the `w2sg run` fields the evaluation sets from the debaters config.
FROM_ROUNDS = ("protocols", "models", "dataset", "seed", "name", "out_dir")


class DPOSettings(Config):
    """One round's DPO (TRL `DPOTrainer`) with a fresh LoRA adapter on the round's starting model."""

    beta: float = Field(0.1, gt=0, description="KL strength: how far the policy may move from the reference")
    lr: float = Field(5e-5, gt=0, description="AdamW learning rate of the LoRA weights")
    steps: int = Field(20, ge=1, description="optimiser steps per round")
    batch_size: int = Field(2, ge=1, description="pairs per step")
    lora_r: int = Field(8, ge=1, description="LoRA rank: the adapter's capacity")
    lora_alpha: int = Field(16, ge=1, description="LoRA scale (alpha / r multiplies the update)")
    max_length: int = Field(
        1024,
        ge=16,
        description="prompt + answer tokens kept (the end cut; a pair whose prompt fills it is dropped)",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="as `w2sg train`: auto = cuda when there"
    )
    precision: Precision = Field("auto", description="as `w2sg train`: auto = bf16 on a GPU that supports it")


class Evaluation(Config):
    """`w2sg debaters evaluate`: round 0 (the config's debater) and every round's model meet in a
    cross-play tournament on held-out questions, and (with `student:`) each labels rows in
    self-play through the judge for a `w2sg run` student."""

    questions: int = Field(
        20,
        ge=2,
        description="tournament questions (2 rows each), none of the rounds' or the judge's training",
    )
    concurrency: int = Field(16, ge=1, description="tournament debates in flight at once")
    orders: int = Field(8, ge=1, description="seeded match orders the openskill ratings are averaged over")
    n_boot: int = Field(200, ge=10, description="bootstrap resamples of the questions for every interval")
    student: dict[str, Any] | None = Field(
        None,
        description="the base `w2sg run` config (sizes, weak, strong, ...) less "
        + ", ".join(FROM_ROUNDS)
        + ", which come from here: one protocol per round, its debater on both sides; None: no student",
    )


class DebaterTrainConfig(ExperimentConfig):
    name: str = "debaters"
    split: str = Field(
        "test", description="the dataset's split of the questions (SciQ offline: test has passages)"
    )
    questions: int = Field(10, ge=1, description="questions per round (each round new ones; 2 rows each)")
    rounds: int = Field(1, ge=1, description="K rounds of expert iteration: debate, collect pairs, DPO")
    debater: ModelRef = Field(
        description="the model trained: hf/<dir or hub id> or embedded/<name> (a key of `models:`, a "
        "string or a spec)"
    )
    judge: ModelRef = Field(description="the judge; its p(side) of each candidate turn ranks the candidates")
    best_of_n: int = Field(
        4, ge=2, description="candidate turns per turn: the best is chosen, the worst rejected"
    )
    temperature: float = Field(1.0, gt=0, le=2.0, description="sampling temperature of the candidates")
    graph: dict[str, Any] = Field(
        default_factory=lambda: {"protocol": "sequential", "rounds": 1, "word_limit": 40, "max_tokens": 64},
        description="the debate's settings (graphs.debate.DebateConfig fields, less debater, judge, seed)",
    )
    concurrency: int = Field(4, ge=1, description="debates in flight at once")
    dpo: DPOSettings = Field(default_factory=DPOSettings)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    tracking: TrackingConfig = tracking_field()

    # The evaluation reads the rounds and changes none, and where curves go changes no result: a
    # run evaluated or tracked later keeps its folder.
    ID_EXCLUDE: ClassVar[dict[str, Any]] = {"evaluation": True, "tracking": True}

    @model_validator(mode="after")
    def _check(self) -> DebaterTrainConfig:
        if fixed := sorted(k for k in PER_ROUND if k in self.graph):
            raise ValueError(f"graph: {', '.join(fixed)} are set by each round; use `debater:` / `judge:`")
        refs = {"debater": self.debater, "judge": self.judge}
        check_model_names({k: v for k, v in refs.items() if isinstance(v, str)}, self.models)
        name = resolve_spec(self.debater, self.models).name
        if name.partition("/")[0] not in ("hf", "embedded"):
            raise ValueError(f"debater: DPO trains local weights: hf/<dir> or embedded/<name>, not {name!r}")
        self.debate(self.debater, 0)  # the graph settings are checked now, not after a round's debates
        try:  # and the evaluation's configs, with the rounds' models as they will be named
            self.tournament(self.out_dir)
            self.student_run(self.out_dir)
        except ValueError as e:
            raise ValueError(f"evaluation: {first_error(e)}") from None
        return self

    def debater_after(self, run_dir: Path, k: int) -> ModelSpec:
        """The debater after `k` rounds: the config's (k = 0), then round k's merged model."""
        base = resolve_spec(self.debater, self.models)
        if k == 0:
            return base
        return base.model_copy(update={"name": f"hf/{run_dir.resolve()}/model-r{k}", "cache": None})

    def players(self, run_dir: Path) -> dict[str, ModelSpec]:
        """r0 (the config's debater), r1, ..., rK: who the evaluation compares."""
        return {f"r{k}": self.debater_after(run_dir, k) for k in range(self.rounds + 1)}

    def tournament(self, run_dir: Path) -> TournamentConfig:
        """Cross-play of the rounds' debaters (plain turns: the policies, not best-of-N)."""
        ev = self.evaluation
        return TournamentConfig.model_validate(
            {
                "name": f"{self.name}-tournament",
                "out_dir": run_dir / "evaluation",
                "dataset": self.dataset,
                "split": self.split,
                "questions": ev.questions,
                "seed": self.seed,
                "models": self.models,
                "debaters": self.players(run_dir),
                "judge": self.judge,
                "graph": self.graph,
                "concurrency": ev.concurrency,
                "orders": ev.orders,
                "n_boot": ev.n_boot,
            }
        )

    def student_run(self, run_dir: Path) -> RunConfig | None:
        """The `w2sg run` whose label sources are the rounds' debaters in self-play, or None."""
        from oversight.experiments.run.config import RunConfig

        base = self.evaluation.student
        if base is None:
            return None
        if fixed := sorted(k for k in FROM_ROUNDS if k in base):
            raise ValueError(f"student: {', '.join(fixed)} come from the debaters config; leave them out")
        graph = {**self.graph, "kind": "debate", "judge": self.judge}
        protocols = {name: {**graph, "debater": spec} for name, spec in self.players(run_dir).items()}
        data = {
            **base,
            "name": f"{self.name}-students",
            "out_dir": run_dir / "evaluation",
            "seed": self.seed,
            "dataset": self.dataset,
            "models": self.models,
            "protocols": protocols,
        }
        return RunConfig.model_validate(data)

    def debate(self, model: ModelRef, round_: int) -> DebateConfig:
        """Round `round_`'s debate: `model` argues both sides with best-of-N turns the judge ranks."""
        debater = {"model": model, "best_of_n": self.best_of_n, "temperature": self.temperature}
        data = {
            **self.graph,
            "kind": "debate",
            "debater": debater,
            "judge": self.judge,
            "seed": self.seed + round_,
        }
        try:
            return DebateConfig.model_validate(data)
        except ValueError as e:
            raise ValueError(f"graph: {e}") from None
