"""Experiment config: the root of every `w2sg` config file. Later stages add their sections here."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from agents.config import Config, ModelSpec

DATA_DIR_ENV = "W2SG_DATA_DIR"


def default_data_dir() -> Path:
    """$W2SG_DATA_DIR, else the shared SciQ folder beside the checkout."""
    return Path(
        os.environ.get(DATA_DIR_ENV, Path(__file__).resolve().parents[2] / "shared" / "data" / "sciq")
    )


class ExperimentConfig(Config):
    name: str = "experiment"
    seed: int = Field(0, description="seeds every stochastic step of the run")
    out_dir: Path = Field(Path("runs"), description="run folders are created under here")
    data_dir: Path = Field(default_factory=default_data_dir, description="folder with the SciQ files")
    models: dict[str, ModelSpec] = Field(default_factory=dict, description="named models, by role")
