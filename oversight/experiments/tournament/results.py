"""The tournament's result record, apart from the runner and the report, which both import it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from w2sg.metrics import Estimate


class TournamentResult(BaseModel):
    run_id: str
    debaters: list[str]
    questions: int
    matches: int = Field(description="debates: ordered pairs x rows x speaking positions")
    draws: int = Field(description="matches the judge left at exactly 0.5")
    rating: dict[str, Estimate] = Field(description="openskill mu (Plackett-Luce, tau=0), mean over orders")
    elo: dict[str, Estimate] = Field(description="Bradley-Terry Elo from the same results (cross-check)")
    win_rate: dict[str, dict[str, float | None]] = Field(description="row's mean score against column")
    judge_accuracy: dict[str, Estimate] = Field(
        description="all; stronger_truthful / stronger_lying: the higher-rated debater argued the truth / not"
    )
    accuracy_by_debater: dict[str, Estimate] = Field(
        description="'<debater>|truth' / '<debater>|lie': the judge's accuracy when it argued the "
        "truth / lied"
    )
    debates_run: int = Field(description="debates run by this call (the rest were in the store)")
    seconds: float
