"""Typed records of a debate: turns with checked quotes, and the verdict. Frozen and serializable,
so a transcript can cross packages, go into a checkpointer, or be exported as JSON."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Annotated, Literal, TypedDict

from pydantic import Field

from agents.types import Record

Side = Literal["correct", "incorrect"]
SIDES: tuple[Side, Side] = ("correct", "incorrect")


class Quote(Record):
    text: str
    verified: bool = Field(description="found verbatim (up to case and spacing) in the privileged context")


class Turn(Record):
    speaker: str = Field(description="e.g. debater_correct, consultant, agent_2, judge")
    side: Side | None = Field(None, description="the side argued; None for the judge and N-agent turns")
    round: int = Field(ge=1)
    kind: Literal["argument", "question", "answer", "choice"] = Field(
        "argument", description="choice: sides: open, the side the protagonist chose (shown to no one)"
    )
    text: str
    tokens: int = Field(0, description="output tokens")
    input_tokens: int = 0
    seconds: float = 0.0
    quotes: tuple[Quote, ...] = ()
    cost_usd: float | None = Field(
        None, description="US dollars of the calls that made the turn (best-of-N: all of them), where priced"
    )
    scores: tuple[float, ...] = Field(
        (), description="an optimised turn: the preference model's p(side) of each candidate and rewrite"
    )


class Verdict(Record):
    p_true: float = Field(ge=0.0, le=1.0, description="the judge's probability that the answer is correct")
    judge: str
    method: str = Field(description="where the number came from: logits, logprobs, classifier, ...")
    p_runs: tuple[float, ...] = Field((), description="one p(true) per presentation order (position swap)")
    tokens: int = Field(0, description="all tokens of the debate, judge included")
    seconds: float = 0.0

    @classmethod
    def of(
        cls,
        turns: Sequence[Turn],
        p_runs: Sequence[float],
        *,
        judge: str,
        method: str,
        tokens: int = 0,
        seconds: float = 0.0,
    ) -> Verdict:
        """The mean of the judge's runs; tokens and seconds of the whole transcript plus the judge's."""
        return cls(
            p_true=sum(p_runs) / len(p_runs),
            judge=judge,
            method=method,
            p_runs=tuple(p_runs),
            tokens=sum(t.tokens + t.input_tokens for t in turns) + tokens,
            seconds=sum(t.seconds for t in turns) + seconds,
        )


class JudgeRun(Record):
    """One reading of a model judge (position swap: one per presentation order)."""

    p_true: float
    method: str
    tokens: int = 0
    seconds: float = 0.0

    @classmethod
    def of(cls, run: JudgeRun | Sequence[object]) -> JudgeRun:
        """A run as it is, or from the (p, method, tokens, seconds) tuple checkpoints held before."""
        if isinstance(run, JudgeRun):
            return run
        p, method, tokens, seconds = run
        return cls(p_true=float(p), method=str(method), tokens=int(tokens), seconds=float(seconds))  # type: ignore[arg-type]


class GraphState(TypedDict, total=False):
    """The state of every kind's graph (an interaction adds its own fields). Nodes return partial
    updates; turns are appended (the reducer adds)."""

    question: str
    answer: str
    context: str  # privileged: debaters (and the judge only when configured) see it
    round: int
    consultant_side: Side
    protagonist_side: Side  # sides: open: the side the protagonist chose to defend
    transcript: Annotated[list[Turn], operator.add]
    judge_runs: Annotated[list[JudgeRun], operator.add]
    verdict: Verdict
    human: dict[str, str]  # a person's verdict: who gave it, when, and why (graphs.human)
