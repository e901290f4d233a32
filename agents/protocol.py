"""The one protocol every backend implements. Backends only translate; the `Model` wrapper adds
retries, concurrency and rate limits, caching, usage and cost."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from agents.types import ChoiceProbs, Completion, GenerateParams, Message


@runtime_checkable
class ModelAPI(Protocol):
    #: canonical model string, e.g. "hf/gpt2", "openai/gpt-4o-mini@https://api.openai.com/v1"
    name: str
    # Optional, read with getattr by `w2sg models check` (a backend without them answers any prompt
    # and scores any choices):
    #   check_prompt: str — a prompt it answers, for a backend that answers only protocol prompts;
    #   not_checkable: dict[str, str] — "generate" / "choice_probs" → why it cannot make that call.

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        """One completion. Raise RetryableError for transient failures, FatalModelError otherwise."""
        ...

    async def choice_probs(self, messages: Sequence[Message], choices: Sequence[str]) -> ChoiceProbs:
        """Probability of each choice as the assistant's reply, normalised over `choices`."""
        ...

    async def aclose(self) -> None:
        """Release clients, threads and memory."""
        ...
