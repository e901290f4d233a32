"""`TournamentConfig`: what `w2sg tournament` reads: named debaters, one judge, the debate's
settings, the questions, and how ratings are fitted."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, model_validator

from agents.config import ModelRef
from agents.names import check_model_names
from graphs.debate import DebateConfig
from graphs.debaters import DebaterRef
from graphs.types import Side
from oversight.experiments.config import ExperimentConfig
from w2sg.tracking import TrackingConfig, tracking_field

#: what the debaters and judge of each match are set to; the rest of `graph:` is shared by all.
PER_MATCH = ("debater", "debaters", "judge", "first")


def _named(field: str, correct: str, incorrect: str) -> str:
    """A match graph's field (`debaters.correct.model`) as the tournament's (`debaters.<name>.model`)."""
    for side, name in (("correct", correct), ("incorrect", incorrect)):
        prefix = f"debaters.{side}"
        if field == prefix or field.startswith(prefix + "."):
            return f"debaters.{name}{field[len(prefix) :]}"
    return field


class TournamentConfig(ExperimentConfig):
    name: str = "tournament"
    split: str = Field(
        "test", description="the dataset's split the debates are on (SciQ offline: only test has passages)"
    )
    questions: int = Field(50, ge=2, description="questions (2 rows each: the right answer and a distractor)")
    debaters: dict[str, DebaterRef] = Field(
        description="name → the debater: a key of `models:`, a model string, an inline spec, or a "
        "debater ({model: ..., best_of_n: N, critique: K, preference: ...}); every ordered pair of "
        "distinct debaters meets on every row, both sides, both speaking positions"
    )
    judge: ModelRef = Field(
        description="the judge of every match: a key of `models:`, a model string or spec"
    )
    graph: dict[str, Any] = Field(
        default_factory=lambda: {"protocol": "sequential", "rounds": 1, "word_limit": 40},
        description="the debate's settings shared by every match (graphs.debate.DebateConfig "
        "fields, less the debaters, judge and `first`, which each match sets)",
    )
    concurrency: int = Field(32, ge=1, description="debates in flight at once")
    orders: int = Field(8, ge=1, description="seeded match orders the openskill ratings are averaged over")
    n_boot: int = Field(200, ge=10, description="bootstrap resamples of the questions for every interval")
    out_dir: Path = Path("runs")
    tracking: TrackingConfig = tracking_field()

    # How the ratings are fitted, how fast debates run and where progress is logged change no
    # debate: same folder.
    ID_EXCLUDE: ClassVar[dict[str, Any]] = {
        "concurrency": True,
        "orders": True,
        "n_boot": True,
        "tracking": True,
    }

    @model_validator(mode="after")
    def _check(self) -> TournamentConfig:
        if len(self.debaters) < 2:
            raise ValueError(f"debaters: a tournament needs at least 2, got {len(self.debaters)}")
        if fixed := sorted(k for k in PER_MATCH if k in self.graph):
            raise ValueError(f"graph: {', '.join(fixed)} are set by each match; name debaters in `debaters:`")
        protocol = self.graph.get("protocol", "sequential")
        if protocol not in ("sequential", "simultaneous"):
            raise ValueError(f"graph.protocol: cross-play needs a two-sided debate, not {protocol!r}")
        names = list(self.debaters)
        for a, b in zip(names, names[1:] + names[:1], strict=True):  # every debater on each side
            # A match's model names (each debater's model and preference model, the judge) must
            # resolve; an error names the debater, not the side it argued.
            refs = self.match(a, b, "correct").model_names()
            check_model_names({_named(f, a, b): n for f, n in refs.items()}, self.models)
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
