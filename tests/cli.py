"""Run the `w2sg` CLI in a subprocess, as a user would (a fresh process each time)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def w2sg(*args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oversight.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        input=stdin,
        env={**os.environ, "COLUMNS": "200"},
        timeout=timeout,
    )


SHIPPED_CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def config_class(path: Path) -> type:
    """The config model a shipped config file is for, by its name's prefix."""
    from graphs.debate import DebateConfig
    from graphs.debaters import DebaterSet
    from graphs.interaction import InteractionConfig
    from oversight.experiments.config import ExperimentConfig
    from oversight.experiments.debaters.config import DebaterTrainConfig
    from oversight.experiments.grid.config import GridConfig
    from oversight.experiments.ladder.config import LadderConfig
    from oversight.experiments.leaderboard.config import LeaderboardConfig
    from oversight.experiments.run.config import RunConfig
    from oversight.experiments.tournament.config import TournamentConfig
    from oversight.labelling.label import LabelConfig
    from w2sg.experiment import W2SGConfig

    kinds = {
        "w2sg-": W2SGConfig,
        "debate-": DebateConfig,
        "interact-": InteractionConfig,
        "label-": LabelConfig,
        "run-": RunConfig,
        "ladder-": LadderConfig,
        "tournament-": TournamentConfig,
        "grid-": GridConfig,
        "leaderboard-": LeaderboardConfig,
        "debaters-": DebaterSet,
        "dpo-": DebaterTrainConfig,
    }
    return next((k for prefix, k in kinds.items() if path.name.startswith(prefix)), ExperimentConfig)
