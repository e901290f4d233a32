"""OpenAI-compatible backend: OpenAI, vLLM, `transformers serve`, llama.cpp server, any base_url.

It only translates: openai's exceptions become RetryableError / FatalModelError, and the `Model`
wrapper does the retrying. The SDK's own retries are off (max_retries=0) so backoff happens once.
Several base_urls spread load: each call goes to the endpoint with the fewest calls in flight.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import logging
import math
import os
import re
import time
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI

from agents.config import ModelSpec, OpenAIOptions
from agents.errors import FatalModelError, NoChoiceProbsError, RetryableError
from agents.types import ChoiceProbs, Completion, GenerateParams, Message, Usage, normalise

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
LOCAL_ONLY_ENV = "W2SG_LOCAL_ONLY"  # tests set it: any non-loopback base_url is refused


def is_local(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def safe_url(url: str) -> str:
    """URL without user info, query or fragment: safe to log."""
    u = urlsplit(url)
    host = u.hostname or ""
    return f"{u.scheme}://{host}{f':{u.port}' if u.port else ''}{u.path}"


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    if headers is None:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def first_choice(text: str, choices: Sequence[str]) -> str | None:
    """The choice a free-text reply names first, as a whole word, any case ("Well, yes." → "Yes");
    at the same place the longer choice wins ("Not sure" over "No"). None if it names none."""
    best: tuple[int, int, str] | None = None
    for c in choices:
        m = re.search(rf"(?<!\w){re.escape(c)}(?!\w)", text, flags=re.IGNORECASE)
        if m and (best is None or (m.start(), -len(c)) < best[:2]):
            best = (m.start(), -len(c), c)
    return None if best is None else best[2]


class OpenAIBackend:
    def __init__(self, name: str, model: str, options: OpenAIOptions):
        self.name = name
        self.model = model
        self.options = options
        urls = options.base_urls or [OPENAI_URL]
        if os.environ.get(LOCAL_ONLY_ENV) == "1":
            for u in urls:
                if not is_local(u):
                    raise FatalModelError(
                        f"{name}: {LOCAL_ONLY_ENV}=1 refuses non-local base_url {safe_url(u)}"
                    )
        key = os.environ.get(options.api_key_env)
        if not key:
            if any(urlsplit(u).hostname == "api.openai.com" for u in urls):
                raise FatalModelError(f"{name}: set the {options.api_key_env} environment variable")
            key = "EMPTY"  # vLLM and most local servers accept any key
        self._key = key
        self._base_urls = urls
        self.urls = [safe_url(u) for u in urls]
        # httpx connection pools belong to one event loop, so each loop gets its own clients.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[AsyncOpenAI]] = (
            weakref.WeakKeyDictionary()
        )
        self.default_concurrency = 32 * len(urls)
        self.in_flight = [0] * len(urls)
        self.sent = [0] * len(urls)
        self._warned_no_logprobs = False
        self._warned_same_samples = False

    def clients(self) -> list[AsyncOpenAI]:
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            self._clients[loop] = [
                AsyncOpenAI(api_key=self._key, base_url=u, max_retries=0, timeout=self.options.timeout_s)
                for u in self._base_urls
            ]
        return self._clients[loop]

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key != "EMPTY" else text

    async def _create(self, **kw: Any) -> Any:
        i = min(range(len(self.urls)), key=lambda j: (self.in_flight[j], self.sent[j]))
        self.in_flight[i] += 1
        self.sent[i] += 1
        where = self.name if self.urls[i] in self.name else f"{self.name} at {self.urls[i]}"
        try:
            resp = await self.clients()[i].chat.completions.create(model=self.model, **kw)
        except openai.APITimeoutError:
            raise RetryableError(f"{where}: timed out after {self.options.timeout_s}s") from None
        except openai.APIConnectionError as e:
            raise RetryableError(
                f"{where}: connection failed ({self._redact(str(e.__cause__ or e))})"
            ) from None
        except openai.APIStatusError as e:
            msg = self._redact(f"{where}: HTTP {e.status_code}: {_server_message(e)}")
            if e.status_code == 429 or e.status_code >= 500 or e.status_code == 408:
                raise RetryableError(
                    msg, retry_after=parse_retry_after(e.response.headers), status=e.status_code
                ) from None
            if e.status_code in (401, 403):
                msg += f" (check the key in ${self.options.api_key_env})"
            raise FatalModelError(msg, status=e.status_code) from None
        except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError) as e:
            raise RetryableError(f"{where}: malformed response ({type(e).__name__})") from None
        finally:
            self.in_flight[i] -= 1
        if not getattr(resp, "choices", None):
            raise RetryableError(f"{where}: malformed response (no choices)")
        return resp

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        t0 = time.perf_counter()
        kw: dict[str, Any] = {
            "messages": [m.model_dump() for m in messages],
            "temperature": params.temperature,
            self.options.max_tokens_field: params.max_tokens,
        }
        if params.top_p < 1.0:  # 1.0 is every server's default; not sending it saves SDK work
            kw["top_p"] = params.top_p
        if params.stop:
            kw["stop"] = list(params.stop)
        if params.seed is not None:
            kw["seed"] = params.seed
        resp = await self._create(**kw)
        choice = resp.choices[0]
        finish = choice.finish_reason if choice.finish_reason in ("stop", "length") else "stop"
        return Completion(
            text=choice.message.content or "",
            usage=_usage(resp),
            seconds=time.perf_counter() - t0,
            model=self.name,
            finish_reason=finish,
        )

    async def choice_probs(self, messages: Sequence[Message], choices: Sequence[str]) -> ChoiceProbs:
        t0 = time.perf_counter()
        resp = await self._create(
            messages=[m.model_dump() for m in messages],
            temperature=0.0,
            logprobs=True,
            top_logprobs=self.options.top_logprobs,
            **{self.options.max_tokens_field: 1},
        )
        lp = resp.choices[0].logprobs
        if lp is None or not lp.content or not lp.content[0].top_logprobs:
            return await self._sampled_probs(messages, choices, t0, _usage(resp))
        top = lp.content[0].top_logprobs
        # " Yes" and "Yes" are the same answer; sum every top token that strips to the choice.
        raw = {c: sum(math.exp(t.logprob) for t in top if t.token.strip() == c) for c in choices}
        if not any(raw.values()):
            seen = [t.token for t in top]
            raise NoChoiceProbsError(
                f"{self.name}: none of {list(choices)} among the top-{len(top)} first tokens {seen}"
            )
        probs, mass = normalise(raw, choices)
        return ChoiceProbs(
            probs=probs,
            method="logprobs",
            mass=mass,
            usage=_usage(resp),
            seconds=time.perf_counter() - t0,
            model=self.name,
        )

    async def _sampled_probs(
        self, messages: Sequence[Message], choices: Sequence[str], t0: float, usage: Usage
    ) -> ChoiceProbs:
        n = self.options.fallback_samples
        if self.options.choice_probs_fallback == "error":
            raise FatalModelError(
                f"{self.name}: the server returned no logprobs (choice_probs_fallback=error)"
            )
        if not self._warned_no_logprobs:
            log.warning(
                "%s: the server returned no logprobs; choice_probs falls back to the "
                "frequency of each choice over %d sampled answers",
                self.name,
                n,
            )
            self._warned_no_logprobs = True
        params = [
            GenerateParams(max_tokens=self.options.fallback_max_tokens, temperature=1.0, seed=i)
            for i in range(n)
        ]
        replies = await asyncio.gather(*[self.generate(messages, q) for q in params])
        counts = dict.fromkeys(choices, 0.0)
        for r in replies:
            usage = usage + r.usage
            hit = first_choice(r.text, choices)
            if hit is not None:
                counts[hit] += 1
        if n > 1 and len({r.text for r in replies}) == 1 and not self._warned_same_samples:
            # A server that ignores temperature and seed gives every sample the same reply, so the
            # "probabilities" can only be 0 or 1: say so once, the numbers are not frequencies.
            log.warning(
                "%s: %d sampled replies at temperature 1.0 with seeds 0-%d were identical: the server "
                "seems to ignore temperature and seed, so sampled choice probabilities are 0 or 1",
                self.name,
                n,
                n - 1,
            )
            self._warned_same_samples = True
        if not any(counts.values()):
            raise NoChoiceProbsError(f"{self.name}: no sampled reply named any of {list(choices)}")
        probs, _ = normalise(counts, choices)
        return ChoiceProbs(
            probs=probs,
            method="sampled",
            mass=sum(counts.values()) / n,
            samples=n,
            usage=usage,
            seconds=time.perf_counter() - t0,
            model=self.name,
        )

    async def aclose(self) -> None:
        for c in self._clients.pop(asyncio.get_running_loop(), []):
            await c.close()


def _usage(resp: Any) -> Usage:
    u = getattr(resp, "usage", None)
    if u is None:
        return Usage()
    return Usage(input_tokens=u.prompt_tokens or 0, output_tokens=u.completion_tokens or 0)


def _server_message(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and "message" in err:
            return str(err["message"])
    return e.message


def load_openai(name: str, options: OpenAIOptions | None = None) -> OpenAIBackend:
    """`openai/<model>` or `openai/<model>@<base_url>`; `options.base_urls` adds more endpoints."""
    rest = name.split("/", 1)[1] if "/" in name else ""
    model, _, url = rest.partition("@")
    if not model:
        raise FatalModelError(f"model name {name!r} needs a model after 'openai/'")
    options = options or OpenAIOptions()
    urls = ([url] if url else []) + [u for u in options.base_urls if u != url]
    return OpenAIBackend(name, model, options.model_copy(update={"base_urls": urls}))


def from_spec(spec: ModelSpec) -> OpenAIBackend:
    """The `openai` provider's factory (agents.providers)."""
    return load_openai(spec.name, spec.openai)
