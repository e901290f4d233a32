"""Experiment config: the root of every `w2sg` config file. Later stages add their sections here."""

from __future__ import annotations

from pydantic import Field

from agents.config import ModelSpec
from w2sg.config import Experiment
from w2sg.datasets import DatasetSpec, dataset_field


class ExperimentConfig(Experiment):
    """An experiment that runs models on a dataset (`w2sg tournament`; the generic kind the CLI
    tests load)."""

    seed: int = Field(0, description="seeds every stochastic step of the run")
    dataset: DatasetSpec = dataset_field()
    models: dict[str, ModelSpec] = Field(default_factory=dict, description="named models, by role")
