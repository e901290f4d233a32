"""Typed records that cross the model boundary: messages in, completions and choice probabilities out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Record(BaseModel):
    """Frozen, strict base for every record that leaves a package."""

    model_config = ConfigDict(frozen=True, extra="forbid")


Role = Literal["system", "user", "assistant"]


class Message(Record):
    role: Role
    content: str


class Usage(Record):
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class GenerateParams(Record):
    """Sampling parameters. temperature 0 means greedy; a seed makes sampling reproducible."""

    max_tokens: int = Field(256, ge=1, description="upper bound on generated tokens")
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_tuple(cls, v: object) -> object:
        if v is None:
            return ()
        if isinstance(v, str):
            return (v,)
        return tuple(v)  # type: ignore[arg-type]


class Completion(Record):
    text: str
    usage: Usage = Usage()
    seconds: float = Field(0.0, description="wall time of the backend call, 0 for a cache hit")
    model: str = ""
    finish_reason: Literal["stop", "length", "error"] | None = None
    cost_usd: float | None = None
    cached: bool = False


ChoiceMethod = Literal[
    "logits",
    "logprobs",
    "echo",
    "completion_logprobs",
    "systemone",
    "sampled",
    "scripted",
    "classifier",
    "extractive",
]


class ChoiceProbs(Record):
    """Normalised probabilities over a fixed set of choices, e.g. {"Yes": 0.7, "No": 0.3}.

    `method` says where the numbers came from: model logits; API logprobs of the first reply token
    (`logprobs` from chat completions, `completion_logprobs` from /v1/completions); `echo`, the
    prompt logprobs of each choice appended to the prompt; or `sampled`, the frequency of each
    choice over `samples` sampled answers (a server that offers no logprobs).
    `mass` is the unnormalised probability the model put on the choices together (1.0 when unknown).
    """

    probs: dict[str, float]
    method: ChoiceMethod
    mass: float = 1.0
    samples: int | None = None
    usage: Usage = Usage()
    seconds: float = 0.0
    model: str = ""
    cost_usd: float | None = None
    cached: bool = False

    def __getitem__(self, choice: str) -> float:
        return self.probs[choice]

    def keys(self) -> Iterator[str]:
        return iter(self.probs)

    def argmax(self) -> str:
        return max(self.probs, key=self.probs.__getitem__)


def as_messages(messages: str | Sequence[Message | dict[str, str]]) -> tuple[Message, ...]:
    """Accept a bare user prompt, Message objects or role/content dicts."""
    if isinstance(messages, str):
        return (Message(role="user", content=messages),)
    out = tuple(m if isinstance(m, Message) else Message.model_validate(m) for m in messages)
    if not out:
        raise ValueError("messages must not be empty")
    return out


def normalise(probs: dict[str, float], choices: Sequence[str]) -> tuple[dict[str, float], float]:
    """Renormalise over `choices`; returns (probs, mass). Uniform when the model put no mass on any."""
    raw = {c: max(0.0, float(probs.get(c, 0.0))) for c in choices}
    mass = sum(raw.values())
    if mass <= 0.0:
        return {c: 1.0 / len(choices) for c in choices}, 0.0
    return {c: p / mass for c, p in raw.items()}, mass


def check_choices(choices: Sequence[str]) -> tuple[str, ...]:
    out = tuple(choices)
    if len(out) < 2:
        raise ValueError(f"choice_probs needs at least two choices, got {list(out)}")
    if len(set(out)) != len(out):
        raise ValueError(f"choices must be distinct, got {list(out)}")
    if any(not c for c in out):
        raise ValueError("choices must be non-empty strings")
    return out
