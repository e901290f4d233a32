"""`Model`: the one thick wrapper around a backend. Retries, concurrency cap, rate limits,
record/replay cache, token/time accounting and cost live here, once, for every backend."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from agents.cache import ResponseCache, cache_key
from agents.config import ModelSpec
from agents.errors import ModelError, ModelTimeoutError, NoChoiceProbsError, RetryableError
from agents.limits import AdaptiveLimit, RateLimiter
from agents.protocol import ModelAPI
from agents.types import (
    ChoiceProbs,
    Completion,
    GenerateParams,
    Message,
    Usage,
    as_messages,
    check_choices,
)

log = logging.getLogger(__name__)
R = TypeVar("R", Completion, ChoiceProbs)
M = TypeVar("M", bound=Mapping[str, "Model"])


class RetriesExhaustedError(ModelError):
    """Every attempt of one call hit a transient error."""


@dataclass
class UsageStats:
    """Running totals for one Model. Tokens, seconds and cost count live backend calls only;
    `timeouts` and `overloaded` (429 / 503 answers) count attempts, `failures` calls that gave up;
    `concurrency_cuts` and `lowest_concurrency` say how far the adaptive limit backed off."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    timeouts: int = 0
    overloaded: int = 0
    concurrency_cuts: int = 0
    lowest_concurrency: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def retry_message(name: str, exc: BaseException | None, k: int, n: int, sleep: float) -> str:
    """One line per retry, whatever the error says: `<model>: <ErrorType>: <first line of the
    message, at most 200 characters>; retry k/n in X s`. A message that starts with the model's
    name (the backends' do) does not repeat it."""
    kind = type(exc).__name__ if exc is not None else "error"
    text = str(exc).strip() if exc is not None else ""
    if text.startswith(name):
        text = text[len(name) :].lstrip(" :")
    lines = text.splitlines()
    first = lines[0].strip() if lines else ""
    if len(first) > 200 or len(lines) > 1:
        first = first[:200].rstrip() + "..."
    return f"{name}: {kind}: {first or '(no message)'}; retry {k}/{n} in {sleep:.2f}s"


def estimate_tokens(messages: Sequence[Message], max_tokens: int = 0) -> int:
    """Rough prompt size for rate limiting before the server has counted (4 chars a token)."""
    return sum(len(m.content) for m in messages) // 4 + 4 * len(messages) + max_tokens


class Model:
    """What graphs and pipelines hold. Construct with `get_model(spec)`."""

    def __init__(self, api: ModelAPI, spec: ModelSpec):
        self.api = api
        self.spec = spec
        self.name = api.name
        self.cache = ResponseCache(spec.cache.path, spec.cache.mode) if spec.cache else None
        self.usage = UsageStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.max_concurrency = spec.max_concurrency or getattr(api, "default_concurrency", 16)
        self.concurrency = AdaptiveLimit(self.max_concurrency, adaptive=spec.adaptive_concurrency)
        self.usage.lowest_concurrency = self.max_concurrency

    def __repr__(self) -> str:
        return f"Model({self.name!r})"

    def _bind_loop(self) -> None:
        # asyncio primitives belong to one event loop; a Model reused under a new loop (a second
        # asyncio.run, a test) gets fresh ones instead of a cryptic "bound to a different loop".
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._limiter = RateLimiter(self.spec.rpm, self.spec.tpm)

    async def generate(
        self,
        messages: str | Sequence[Message | dict[str, str]],
        *,
        max_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | str | None = None,
        seed: int | None = None,
    ) -> Completion:
        msgs = as_messages(messages)
        params = GenerateParams(
            max_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stop, seed=seed
        )
        return await self._run(
            "generate",
            lambda: cache_key(self.name, "generate", msgs, params.model_dump(mode="json")),
            Completion,
            estimate_tokens(msgs, max_tokens),
            lambda: self.api.generate(msgs, params),
        )

    async def choice_probs(
        self, messages: str | Sequence[Message | dict[str, str]], choices: Sequence[str]
    ) -> ChoiceProbs:
        msgs = as_messages(messages)
        chs = check_choices(choices)
        return await self._run(
            "choice_probs",
            lambda: cache_key(self.name, "choice_probs", msgs, {"choices": list(chs)}),
            ChoiceProbs,
            estimate_tokens(msgs, 1),
            lambda: self.api.choice_probs(msgs, chs),
        )

    async def _run(
        self,
        kind: str,
        make_key: Callable[[], str],
        record: type[R],
        est: int,
        call: Callable[[], Awaitable[R]],
    ) -> R:
        key = make_key() if self.cache is not None else ""  # hashing costs; skip it without a cache
        if self.cache is not None:
            hit = self.cache.get(key, what=f"{kind} on {self.name}")
            if hit is not None:
                self.usage.cache_hits += 1
                return record.model_validate_json(hit).model_copy(update={"cached": True})
        self._bind_loop()
        result = await self._with_retries(kind, est, call)
        result = self._account(result)
        if self.cache is not None:
            self.cache.put(key, self.name, kind, result.model_dump_json())
        return result

    async def _attempt(self, est: int, call: Callable[[], Awaitable[R]]) -> R:
        generation = await self.concurrency.acquire()
        ok = overloaded = False
        try:
            await self._limiter.acquire(est)
            result = await call()
            self._limiter.settle(est, result.usage.input_tokens + result.usage.output_tokens)
            ok = True
            return result
        except RetryableError as e:
            overloaded = e.overloaded
            if isinstance(e, ModelTimeoutError):
                self.usage.timeouts += 1
            elif overloaded:
                self.usage.overloaded += 1
            raise
        finally:
            self.concurrency.release(generation, ok=ok, overloaded=overloaded)
            self.usage.concurrency_cuts = self.concurrency.cuts
            self.usage.lowest_concurrency = self.concurrency.lowest

    async def _with_retries(self, kind: str, est: int, call: Callable[[], Awaitable[R]]) -> R:
        retry = self.spec.retry
        backoff = wait_random_exponential(multiplier=retry.initial_s, max=retry.max_wait_s)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hint = getattr(exc, "retry_after", None) or 0.0
            return max(backoff(state), min(hint, retry.max_wait_s))

        def before_sleep(state: RetryCallState) -> None:
            self.usage.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            sleep = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s", retry_message(self.name, exc, state.attempt_number, retry.max_attempts - 1, sleep)
            )

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(retry.max_attempts),
                wait=wait,
                retry=retry_if_exception_type(RetryableError),
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    return await self._attempt(est, call)
        except NoChoiceProbsError as e:
            self.usage.failures += 1
            raise NoChoiceProbsError(
                f"{self.name} {kind}: gave up after {retry.max_attempts} attempts; last reply: {e}"
            ) from e
        except RetryableError as e:
            self.usage.failures += 1
            raise RetriesExhaustedError(
                f"{self.name} {kind}: gave up after {retry.max_attempts} attempts; last error: {e}"
            ) from e
        except ModelError:
            self.usage.failures += 1
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _account(self, result: R) -> R:
        u: Usage = result.usage
        self.usage.calls += 1
        self.usage.input_tokens += u.input_tokens
        self.usage.output_tokens += u.output_tokens
        self.usage.seconds += result.seconds
        if self.spec.price is None:
            return result
        cost = self.spec.price.cost(u.input_tokens, u.output_tokens)
        self.usage.cost_usd += cost
        return result.model_copy(update={"cost_usd": cost})

    async def aclose(self) -> None:
        await self.api.aclose()
        if self.cache is not None:
            self.cache.close()

    async def __aenter__(self) -> Model:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@asynccontextmanager
async def closing_all(models: M) -> AsyncIterator[M]:
    """`models` (role → Model) for an `async with` block, each closed when it ends, however it ends."""
    try:
        yield models
    finally:
        for m in models.values():
            await m.aclose()


def timed() -> Callable[[], float]:
    """Start a wall-clock timer; call the result for elapsed seconds."""
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0
