"""`TournamentConfig`: what `w2sg tournament` reads: named debaters, one judge, the debate's
settings, the questions, and how ratings are fitted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from agents.config import ModelRef
from graphs.debate import DebateConfig
from graphs.types import Side
from oversight.config import ExperimentConfig
from oversight.label import check_model_names
from w2sg.run_folder import run_id

#: what the debaters and judge of each match are set to; the rest of `graph:` is shared by all.
PER_MATCH = ("debater", "debaters", "judge", "first")


class TournamentConfig(ExperimentConfig):
    name: str = "tournament"
    split: str = Field(
        "test", description="the dataset's split the debates are on (SciQ offline: only test has passages)"
    )
    questions: int = Field(50, ge=2, description="questions (2 rows each: the right answer and a distractor)")
    debaters: dict[str, ModelRef] = Field(
        description="name → the debater: a key of `models:`, a model string or an inline spec; every "
        "ordered pair of distinct debaters meets on every row, both sides, both speaking positions"
    )
    judge: ModelRef = Field(
        description="the judge of every match: a key of `models:`, a model string or spec"
    )
    graph: dict[str, Any] = Field(
        default_factory=lambda: {"protocol": "sequential", "rounds": 1, "word_limit": 40},
        description="the debate's settings shared by every match (graphs.config.DebateSettings "
        "fields, less the debaters, judge and `first`, which each match sets)",
    )
    concurrency: int = Field(32, ge=1, description="debates in flight at once")
    orders: int = Field(8, ge=1, description="seeded match orders the openskill ratings are averaged over")
    n_boot: int = Field(200, ge=10, description="bootstrap resamples of the questions for every interval")
    out_dir: Path = Path("runs")

    @model_validator(mode="after")
    def _check(self) -> TournamentConfig:
        if len(self.debaters) < 2:
            raise ValueError(f"debaters: a tournament needs at least 2, got {len(self.debaters)}")
        if fixed := sorted(k for k in PER_MATCH if k in self.graph):
            raise ValueError(f"graph: {', '.join(fixed)} are set by each match; name debaters in `debaters:`")
        protocol = self.graph.get("protocol", "sequential")
        if protocol not in ("sequential", "simultaneous"):
            raise ValueError(f"graph.protocol: cross-play needs a two-sided debate, not {protocol!r}")
        names = {f"debaters.{k}": v for k, v in self.debaters.items() if isinstance(v, str)}
        if isinstance(self.judge, str):
            names["judge"] = self.judge
        check_model_names(names, self.models)
        a, b = list(self.debaters)[:2]
        self.match(a, b, "correct")  # the shared settings are checked here, naming the field
        return self

    def match(self, correct: str, incorrect: str, first: Side) -> DebateConfig:
        """The debate of one match: `correct` argues the proposed answer is right, `incorrect` that
        it is wrong, `first` speaks first (sequential)."""
        debaters = {"correct": self.debaters[correct], "incorrect": self.debaters[incorrect]}
        data = {**self.graph, "kind": "debate", "debaters": debaters, "judge": self.judge, "first": first}
        try:
            return DebateConfig.model_validate(data)
        except ValueError as e:
            raise ValueError(f"graph: {e}") from None

    def run_id(self, data: str) -> str:
        # How the ratings are fitted and how fast debates run change no debate: same folder.
        return run_id(self.name, self, data, exclude=frozenset({"concurrency", "orders", "n_boot"}))
