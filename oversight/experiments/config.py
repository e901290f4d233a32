"""Experiment config: the root of every `w2sg` config file. Later stages add their sections here."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from agents.config import Config, ModelSpec
from w2sg.datasets import DatasetSpec, dataset_field


class ExperimentConfig(Config):
    name: str = "experiment"
    seed: int = Field(0, description="seeds every stochastic step of the run")
    out_dir: Path = Field(Path("runs"), description="run folders are created under here")
    dataset: DatasetSpec = dataset_field()
    models: dict[str, ModelSpec] = Field(default_factory=dict, description="named models, by role")
