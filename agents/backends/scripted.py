"""Scripted and function backends: real backends for tests, answering from rules, a recorded
table, or a Python callable. Deterministic: a seeded call always gives the same reply."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agents.config import ModelSpec, ScriptedOptions, ScriptedRule
from agents.errors import FatalModelError
from agents.types import ChoiceProbs, Completion, GenerateParams, Message, Usage, normalise

#: fn(messages, params) -> reply text; fn(messages, choices) -> {choice: prob}
ReplyFn = Callable[[Sequence[Message], GenerateParams], str]
ProbsFn = Callable[[Sequence[Message], Sequence[str]], dict[str, float]]


def count_tokens(text: str) -> int:
    return len(text.split())


def _prompt_tokens(messages: Sequence[Message]) -> int:
    return sum(count_tokens(m.content) for m in messages)


def _truncate(text: str, params: GenerateParams) -> tuple[str, str]:
    for s in params.stop:
        if s in text:
            return text[: text.index(s)], "stop"
    words = text.split(" ")
    if len(text.split()) > params.max_tokens:
        return " ".join(words[: params.max_tokens]), "length"
    return text, "stop"


def load_table(path: Path) -> dict[str, dict[str, object]]:
    """JSONL rows {"prompt": last user message, "reply": str, "probs": {...}?}; errors name the line."""
    table: dict[str, dict[str, object]] = {}
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt = row["prompt"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise FatalModelError(f"{path}:{i}: expected a JSON object with a 'prompt' field ({e})") from None
        table[prompt] = row
    return table


class ScriptedBackend:
    """Answers from `rules` (first regex match on the last user message), then a recorded `table`,
    then `reply_fn` / `probs_fn`, then `default_reply`."""

    def __init__(
        self,
        name: str = "scripted",
        options: ScriptedOptions | None = None,
        *,
        reply_fn: ReplyFn | None = None,
        probs_fn: ProbsFn | None = None,
    ):
        self.name = name
        self.default_concurrency = 1024
        self.options = options or ScriptedOptions()
        self.rules = [(re.compile(r.match, re.S), r) for r in self.options.rules]
        self.table = load_table(self.options.table) if self.options.table else {}
        self.reply_fn = reply_fn
        self.probs_fn = probs_fn
        self.calls: list[tuple[str, tuple[Message, ...]]] = []  # what the model was shown, in order

    def _rule(
        self, messages: Sequence[Message], usable: Callable[[ScriptedRule], bool]
    ) -> ScriptedRule | None:
        last = _last_user(messages)
        return next((r for pat, r in self.rules if usable(r) and pat.search(last)), None)

    def _reply(self, messages: Sequence[Message], params: GenerateParams) -> str:
        rule = self._rule(messages, lambda r: r.reply is not None or bool(r.replies))
        if rule is not None:
            if rule.replies:
                return rule.replies[_rng(messages, params.seed).randrange(len(rule.replies))]
            return rule.reply  # type: ignore[return-value]
        row = self.table.get(_last_user(messages))
        if row is not None and "reply" in row:
            return str(row["reply"])
        if self.reply_fn is not None:
            return self.reply_fn(messages, params)
        return self.options.default_reply

    def _probs(self, messages: Sequence[Message], choices: Sequence[str]) -> dict[str, float]:
        rule = self._rule(messages, lambda r: r.probs is not None)
        if rule is not None and rule.probs is not None:
            return rule.probs
        row = self.table.get(_last_user(messages))
        if row is not None and isinstance(row.get("probs"), dict):
            return row["probs"]  # type: ignore[return-value]
        if self.probs_fn is not None:
            return self.probs_fn(messages, choices)
        # Otherwise the choice the scripted reply starts with gets all the mass.
        reply = self._reply(messages, GenerateParams(max_tokens=8)).strip()
        hit = {c: 1.0 for c in choices if reply.startswith(c)}
        return hit or {c: 1.0 for c in choices}

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        t0 = time.perf_counter()
        self.calls.append(("generate", tuple(messages)))
        if self.options.latency_s:
            await asyncio.sleep(self.options.latency_s)
        text, finish = _truncate(self._reply(messages, params), params)
        return Completion(
            text=text,
            usage=Usage(input_tokens=_prompt_tokens(messages), output_tokens=count_tokens(text)),
            seconds=time.perf_counter() - t0,
            model=self.name,
            finish_reason=finish,  # type: ignore[arg-type]
        )

    async def choice_probs(self, messages: Sequence[Message], choices: Sequence[str]) -> ChoiceProbs:
        t0 = time.perf_counter()
        self.calls.append(("choice_probs", tuple(messages)))
        if self.options.latency_s:
            await asyncio.sleep(self.options.latency_s)
        probs, mass = normalise(self._probs(messages, choices), choices)
        return ChoiceProbs(
            probs=probs,
            method="scripted",
            mass=mass,
            usage=Usage(input_tokens=_prompt_tokens(messages), output_tokens=1),
            seconds=time.perf_counter() - t0,
            model=self.name,
        )

    async def aclose(self) -> None:
        return None


def _last_user(messages: Sequence[Message]) -> str:
    return next((m.content for m in reversed(messages) if m.role == "user"), "")


def _rng(messages: Sequence[Message], seed: int | None) -> random.Random:
    """Seeded per call from the seed and the prompt, so concurrent order does not matter."""
    blob = json.dumps([seed, [m.model_dump() for m in messages]], sort_keys=True)
    return random.Random(int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big"))


def from_spec(spec: ModelSpec) -> ScriptedBackend:
    """The `scripted` provider's factory (agents.providers)."""
    return ScriptedBackend(spec.name, spec.scripted)
