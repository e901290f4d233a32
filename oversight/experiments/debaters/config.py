"""`DebaterTrainConfig`: what `w2sg debaters train` reads: the debater model to train, the judge
whose p(side) ranks its best-of-N candidates, the questions, and the DPO settings of each round."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from agents.config import ModelRef, resolve_spec
from agents.names import check_model_names
from graphs.debate import DebateConfig
from oversight.experiments.config import ExperimentConfig
from w2sg.config import Config
from w2sg.train import Precision

#: the debate fields each round sets; the rest of `graph:` is the config's.
PER_ROUND = ("debater", "debaters", "judge", "seed")


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
        return self

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
