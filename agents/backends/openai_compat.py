"""OpenAI-compatible backend: OpenAI, vLLM, `transformers serve`, llama.cpp server, any base_url.

It only translates: openai's exceptions become RetryableError / FatalModelError, and the `Model`
wrapper does the retrying. The SDK's own retries are off (max_retries=0) so backoff happens once.
Several base_urls spread load: each call goes to the endpoint with the fewest calls in flight.

Choice probabilities come from the best method the server offers (`agents.backends.openai_choices`).
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import logging
import os
import time
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI

from agents.backends.openai_choices import ChoiceScoring, response_usage
from agents.chat_template import ChatTemplate
from agents.config import ModelSpec, OpenAIOptions
from agents.errors import FatalModelError, ModelTimeoutError, RetryableError
from agents.types import Completion, GenerateParams, Message

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


class OpenAIBackend(ChoiceScoring):
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
        self.template = ChatTemplate.load(options.chat_template) if options.chat_template else None
        self.method: str | None = None if options.choice_method == "auto" else options.choice_method
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

    def timeout(self, max_tokens: int) -> float:
        """A request's timeout: longer replies take longer, most of all on a busy server."""
        return self.options.timeout_s + self.options.timeout_per_token_s * max_tokens

    async def _create(self, endpoint: str = "chat", *, max_tokens: int, **kw: Any) -> Any:
        """One request to `chat` (/v1/chat/completions), `completions` (/v1/completions) or
        `systemone` (transformers serve's /v1/systemone: a JSON dict back)."""
        i = min(range(len(self.urls)), key=lambda j: (self.in_flight[j], self.sent[j]))
        self.in_flight[i] += 1
        self.sent[i] += 1
        where = self.name if self.urls[i] in self.name else f"{self.name} at {self.urls[i]}"
        client = self.clients()[i]
        timeout = self.timeout(max_tokens)
        try:
            if endpoint == "systemone":
                body = {"model": self.model, **kw}
                resp = await client.post(
                    "/systemone", cast_to=object, body=body, options={"timeout": timeout}
                )
            else:
                api = client.chat.completions if endpoint == "chat" else client.completions
                kw[self.options.max_tokens_field if endpoint == "chat" else "max_tokens"] = max_tokens
                resp = await api.create(model=self.model, timeout=timeout, **kw)
        except openai.APITimeoutError:
            raise ModelTimeoutError(f"{where}: timed out after {timeout:g}s") from None
        except openai.APIConnectionError as e:
            raise RetryableError(
                f"{where}: connection failed ({self._redact(str(e.__cause__ or e))})"
            ) from None
        except openai.APIStatusError as e:
            msg = self._redact(f"{where}: HTTP {e.status_code}: {_server_message(e)}")
            if e.status_code in (408, 429) or (e.status_code >= 500 and e.status_code != 501):
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
        if endpoint != "systemone" and not getattr(resp, "choices", None):
            raise RetryableError(f"{where}: malformed response (no choices)")
        return resp

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        t0 = time.perf_counter()
        kw: dict[str, Any] = {
            "messages": [m.model_dump() for m in messages],
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
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
            usage=response_usage(resp),
            seconds=time.perf_counter() - t0,
            model=self.name,
            finish_reason=finish,
        )

    async def aclose(self) -> None:
        for c in self._clients.pop(asyncio.get_running_loop(), []):
            await c.close()


def _server_message(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and "message" in err:
            return str(err["message"])
    return e.message


def load_openai(name: str, options: OpenAIOptions | None = None) -> OpenAIBackend:
    """`openai/<model>[@<base_url>]`, or `openai[/<label>][@<base_url>]` with `openai.model` the
    served id, read plainly (slashes, paths, '@'); `options.base_urls` adds more endpoints."""
    options = options or OpenAIOptions()
    rest = name.split("/", 1)[1] if "/" in name else ""
    head, sep, tail = rest.rpartition("@")
    url = tail if sep and "://" in tail else ""
    model = options.model or (head if url else rest)
    if not model:
        raise FatalModelError(
            f"model name {name!r} needs a model: openai/<model>, or the served id in `openai: {{model: ...}}`"
        )
    urls = ([url] if url else []) + [u for u in options.base_urls if u != url]
    return OpenAIBackend(name, model, options.model_copy(update={"base_urls": urls}))


async def served_models(base_url: str, api_key_env: str = "OPENAI_API_KEY") -> list[str]:
    """The model ids a server lists at GET /models (what `openai.model` takes)."""
    backend = OpenAIBackend(
        f"openai@{safe_url(base_url)}", "", OpenAIOptions(base_urls=[base_url], api_key_env=api_key_env)
    )
    where = backend.urls[0]
    try:
        page = await backend.clients()[0].models.list(timeout=backend.options.timeout_s)
        return [m.id for m in page.data]
    except openai.APIConnectionError as e:
        raise FatalModelError(
            f"{where}: connection failed ({backend._redact(str(e.__cause__ or e))})"
        ) from None
    except openai.APIStatusError as e:
        raise FatalModelError(
            backend._redact(f"{where}: HTTP {e.status_code}: {_server_message(e)}")
        ) from None
    finally:
        await backend.aclose()


def from_spec(spec: ModelSpec) -> OpenAIBackend:
    """The `openai` provider's factory (agents.providers)."""
    return load_openai(spec.name, spec.openai)
