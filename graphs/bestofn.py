"""Optimised debaters (Khan et al. 2024): best-of-N and critique-and-refine against a preference
model. One turn: N candidates sampled with distinct seeds, all in flight at once (an hf or
embedded model batches them; an OpenAI-compatible server gets N concurrent calls: the `n=`
parameter is not used, since not every server honours it and each candidate needs its own seed
for reproducible, cacheable calls), each rated by the preference model's p(the debater's side), the
best kept; then `critique` rounds in which the debater's model critiques the kept turn, rewrites
it, and the rewrite replaces it when it rates higher. Every call's tokens, seconds and dollars go
into the turn, so a label's cost counts all of them.

`optimise_turn` knows nothing of graphs: the debate node gives it a way to sample a turn and a way
to score one (the judge's prompt with the candidate in place, `graphs.debate`).

`RECORD`: set it to a list and every best-of-N turn optimised in that context appends its prompt,
candidates and scores (`Candidates`): the preference pairs `w2sg debaters train` learns from. It is
a context variable so the debate graph need not carry candidates in its state or stored labels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from agents.types import ChoiceProbs, Completion
from graphs.debaters import DebaterSpec

#: (prompt, seed, temperature) -> the model's completion
Sample = Callable[[str, int, float], Awaitable[Completion]]
#: candidate text -> (p of the debater's side, the preference call's result)
Score = Callable[[str], Awaitable[tuple[float, ChoiceProbs]]]


@dataclass
class Spent:
    """Everything one optimised turn cost, over all its calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    cost_usd: float | None = None
    calls: int = 0

    def add(self, r: Completion | ChoiceProbs) -> None:
        self.input_tokens += r.usage.input_tokens
        self.output_tokens += r.usage.output_tokens
        self.seconds += r.seconds
        self.calls += 1
        if r.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + r.cost_usd


@dataclass
class Optimised:
    text: str
    score: float = 0.0
    scores: list[float] = field(default_factory=list)  # every candidate's and rewrite's, in call order
    spent: Spent = field(default_factory=Spent)


@dataclass(frozen=True)
class Candidates:
    """One best-of-N turn as the debater saw it: its prompt, side, and every candidate's text and
    the preference model's p(side) of it (critique rewrites are not included)."""

    prompt: str
    side: str
    texts: tuple[str, ...]
    scores: tuple[float, ...]


#: where optimised turns are recorded, when set (each asyncio task sees its own context's list).
RECORD: ContextVar[list[Candidates] | None] = ContextVar("bestofn_record", default=None)


def candidate_seeds(seed: int, n: int) -> list[int]:
    """N distinct seeds from a turn's seed: steps of a prime modulo the prime 2**31 - 1, so distinct
    for any N below it, and below 2**31, as some servers require."""
    return [(seed + 7919 * i) % (2**31 - 1) for i in range(n)]


async def optimise_turn(
    spec: DebaterSpec, side: str, prompt: str, seed: int, sample: Sample, score: Score
) -> Optimised:
    """The turn to say: the best of `spec.best_of_n` seeded candidates by `score`, then
    `spec.critique` critique-and-refine rounds, each rewrite kept only when it scores higher."""
    spent = Spent()
    seeds = candidate_seeds(seed, spec.best_of_n)
    drafts = await asyncio.gather(*(sample(prompt, s, spec.temperature) for s in seeds))
    for c in drafts:
        spent.add(c)
    texts = [c.text.strip() for c in drafts]
    rated = await asyncio.gather(*(score(t) for t in texts))
    for _, probs in rated:
        spent.add(probs)
    scores = [p for p, _ in rated]
    if (record := RECORD.get()) is not None:
        record.append(Candidates(prompt, side, tuple(texts), tuple(scores)))
    best = max(range(len(texts)), key=lambda i: scores[i])  # ties: the first candidate
    out = Optimised(text=texts[best], score=scores[best], scores=scores, spent=spent)
    for k in range(spec.critique):
        round_seed = (seed + 104729 * (k + 1)) % (2**31 - 1)
        ask = spec.critique_prompt.format(prompt=prompt, draft=out.text, side_claim=side)
        critique = await sample(ask, round_seed, spec.temperature)
        spent.add(critique)
        redo = spec.refine_prompt.format(
            prompt=prompt, draft=out.text, critique=critique.text.strip(), side_claim=side
        )
        rewrite = await sample(redo, round_seed + 1, spec.temperature)
        spent.add(rewrite)
        p, probs = await score(rewrite.text.strip())
        spent.add(probs)
        out.scores.append(p)
        if p > out.score:
            out.text, out.score = rewrite.text.strip(), p
    return out
