"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks, with fault injection.

Run it in its own process (`FakeServer()` does; or `python -m agents.testing --port 8000`).
Answers are deterministic functions of the prompt: the reply starts "Yes" or "No" by `p_yes(prompt)`,
and logprobs put 0.9·p_yes on "Yes", 0.9·(1−p_yes) on "No", 0.1 on "Maybe". Sampled replies
(temperature > 0) draw Yes/No with probability p_yes from a seeded RNG.

/v1/completions takes a prompt rendered with `CHAT_TEMPLATE` (the last user message is read back
out of it), with `echo` (the logprob of every prompt token: the choice after the assistant marker
gets log 0.9·p_yes for "Yes", as above) and `logprobs: k` (top-k of the one generated token).

Control endpoints (JSON): POST /control {latency_s, faults: [...], fault_rate, fault_kinds, seed,
retry_after, logprobs (chat logprobs), completions (serve /v1/completions at all), echo (honour
`echo`; off: only the generated token comes back, as servers that ignore it do),
completion_logprobs (top logprobs in /v1/completions), systemone (serve transformers serve's
/v1/systemone: p_yes of the `state` for a yes/no question), reply_prefix (words before the verdict),
ignore_sampling (greedy whatever the temperature and seed), require_key}; GET /control/stats
(`injected` counts the faults served, by kind; `endpoints` the requests per endpoint);
POST /control/reset.
Fault kinds: 429, 500, 503, 400, 401, timeout, malformed, empty, and no_choice: a well-formed 200
whose reply and top logprobs hold neither "Yes" nor "No" (a malformed verdict).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agents.testing.replies import (
    CHAT_TEMPLATE,
    completion_logprobs,
    first_tokens,
    p_yes,
    read_prompt,
    reply,
)

__all__ = ["CHAT_TEMPLATE", "FakeServer", "p_yes"]

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
FAULT_KINDS = ("429", "500", "503", "400", "401", "timeout", "malformed", "empty", "no_choice")
NO_CHOICE_TOP = (("Maybe", 0.6), ("Perhaps", 0.4))  # what a no_choice fault answers


class State:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.latency_s = 0.0
        self.faults: list[str] = []
        self.fault_rate = 0.0
        self.fault_kinds: list[str] = list(FAULT_KINDS[:3])
        self.rng = random.Random(0)
        self.retry_after: str | None = None
        self.logprobs = True
        self.completions = True
        self.echo = True
        self.completion_logprobs = True
        self.systemone = False  # transformers serve's /v1/systemone (off: 404, as other servers)
        self.reply_prefix = ""  # words before the verdict, as chat models often begin
        self.ignore_sampling = False  # answer greedily whatever temperature and seed say
        self.require_key: str | None = None
        self.timeout_sleep_s = 30.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests = 0
        self.arrivals: list[float] = []
        self.statuses: dict[str, int] = {}
        self.models: dict[str, int] = {}
        self.injected: dict[str, int] = {}
        self.endpoints: dict[str, int] = {}

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "max_in_flight": self.max_in_flight,
            "in_flight": self.in_flight,
            "arrivals": self.arrivals,
            "statuses": self.statuses,
            "models": self.models,
            "injected": self.injected,
            "endpoints": self.endpoints,
        }

    def next_fault(self) -> str | None:
        fault = None
        if self.faults:
            fault = self.faults.pop(0)
        elif self.fault_rate and self.rng.random() < self.fault_rate:
            fault = self.rng.choice(self.fault_kinds)
        if fault is not None:
            self.injected[fault] = self.injected.get(fault, 0) + 1
        return fault


class Handlers:
    """The server's endpoints over one `State`: the shared bookkeeping, key check, latency and
    injected faults (`serving`), then each endpoint's answer."""

    def __init__(self, state: State):
        self.state = state

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        self.state.statuses[str(status)] = self.state.statuses.get(str(status), 0) + 1
        return JSONResponse(
            {"error": {"message": message, "type": "fake", "code": status}},
            status_code=status,
            headers=headers,
        )

    def envelope(
        self, obj: str, body: dict[str, Any], choice: dict[str, Any], prompt: int, completion: int
    ) -> Response:
        """A chat or text completion response around its one choice."""
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        return JSONResponse(
            {
                "id": f"{'chatcmpl' if obj.startswith('chat') else 'cmpl'}-{self.state.requests}",
                "object": obj,
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [choice],
                "usage": usage,
            }
        )

    def serving(self, handler: Any, kind: str) -> Any:
        """An endpoint with the shared bookkeeping, key check, latency and injected faults."""

        async def endpoint(request: Request) -> Response:
            self.state.requests += 1
            self.state.endpoints[kind] = self.state.endpoints.get(kind, 0) + 1
            self.state.arrivals.append(time.monotonic())
            self.state.in_flight += 1
            self.state.max_in_flight = max(self.state.max_in_flight, self.state.in_flight)
            try:
                return await self.faulty(request, handler, kind)
            finally:
                self.state.in_flight -= 1

        return endpoint

    async def faulty(self, request: Request, handler: Any, kind: str) -> Response:
        if (
            self.state.require_key
            and request.headers.get("authorization") != f"Bearer {self.state.require_key}"
        ):
            return self.error(401, "Incorrect API key provided")
        body = await request.json()
        self.state.models[body.get("model", "")] = self.state.models.get(body.get("model", ""), 0) + 1
        if (kind == "completions" and not self.state.completions) or (
            kind == "systemone" and not self.state.systemone
        ):
            return self.error(404, "Not Found")
        if self.state.latency_s:
            await asyncio.sleep(self.state.latency_s)
        fault = self.state.next_fault()
        if fault == "timeout":
            await asyncio.sleep(self.state.timeout_sleep_s)
        elif fault == "429":
            headers = {"retry-after": self.state.retry_after} if self.state.retry_after else None
            return self.error(429, "Rate limit reached", headers)
        elif fault in ("500", "503", "400", "401"):
            return self.error(int(fault), f"injected {fault}")
        elif fault == "malformed":
            self.state.statuses["malformed"] = self.state.statuses.get("malformed", 0) + 1
            return Response(b'{"id": "x", "choices": [', media_type="application/json")
        elif fault == "empty":
            return JSONResponse(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model"),
                    "choices": [],
                }
            )
        self.state.statuses["200"] = self.state.statuses.get("200", 0) + 1
        return await handler(body, fault)

    async def completions(self, body: dict[str, Any], fault: str | None) -> Response:
        text = str(body.get("prompt", ""))
        user, _ = read_prompt(text)
        generated = (
            reply(user, body, self.state.reply_prefix, self.state.ignore_sampling).split(",")[0].split()[0]
        )
        want = body.get("logprobs") is not None and self.state.completion_logprobs
        logprobs = completion_logprobs(text, body, bool(body.get("echo")) and self.state.echo, generated)
        choice = {
            "index": 0,
            "text": (text if body.get("echo") and self.state.echo else "") + generated,
            "logprobs": logprobs if want else None,
            "finish_reason": "length",
        }
        return self.envelope("text_completion", body, choice, len(text.split()), 1)

    async def systemone(self, body: dict[str, Any], fault: str | None) -> Response:
        """A yes/no (`noul`) question is p_yes(state); a `choice` one gives its first option p_yes
        and shares the rest evenly."""
        state_text = str(body.get("state", ""))
        p = p_yes(state_text)
        answers = {}
        for name, q in (body.get("questions") or {}).items():
            if q.get("type") == "noul":
                answers[name] = {"type": "noul", "noul": p}
            else:
                options = list(q.get("criteria") or {})
                rest = (1 - p) / max(1, len(options) - 1)
                probs = {o: (p if i == 0 else rest) for i, o in enumerate(options)}
                answers[name] = {"type": "choice", "choice": options[0], "probabilities": probs}
        usage = {"input_tokens": len(state_text.split()), "output_tokens": 0}
        return JSONResponse({"model": body.get("model"), "answers": answers, "usage": usage})

    async def chat(self, body: dict[str, Any], fault: str | None) -> Response:
        messages = body.get("messages") or []
        prompt = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        if fault == "no_choice":
            text = f"{NO_CHOICE_TOP[0][0]}."
        else:
            text = reply(prompt, body, self.state.reply_prefix, self.state.ignore_sampling)
        logprobs = None
        if body.get("logprobs") and self.state.logprobs:
            top = first_tokens(p_yes(prompt))
            top = list(NO_CHOICE_TOP) if fault == "no_choice" else top
            top = top[: body.get("top_logprobs") or 1]
            logprobs = {
                "content": [
                    {
                        "token": top[0][0],
                        "logprob": math.log(top[0][1]),
                        "bytes": None,
                        "top_logprobs": [{"token": t, "logprob": math.log(q), "bytes": None} for t, q in top],
                    }
                ]
            }
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": logprobs,
            "finish_reason": "stop",
        }
        return self.envelope("chat.completion", body, choice, prompt_tokens, len(text.split()))

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def control(self, request: Request) -> Response:
        body = await request.json()
        for key, value in body.items():
            if key == "faults":
                self.state.faults.extend(str(f) for f in value)
            elif key == "seed":
                self.state.rng = random.Random(value)
            elif hasattr(self.state, key) and key in {
                "latency_s",
                "fault_rate",
                "fault_kinds",
                "retry_after",
                "logprobs",
                "completions",
                "echo",
                "completion_logprobs",
                "systemone",
                "reply_prefix",
                "ignore_sampling",
                "require_key",
                "timeout_sleep_s",
            }:
                setattr(self.state, key, value)
            else:
                return self.error(400, f"unknown control field {key!r}")
        return JSONResponse({"ok": True})

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats())

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"ok": True})


def build_app(state: State) -> Any:
    h = Handlers(state)
    return Starlette(
        routes=[
            Route("/v1/chat/completions", h.serving(h.chat, "chat"), methods=["POST"]),
            Route("/v1/completions", h.serving(h.completions, "completions"), methods=["POST"]),
            Route("/v1/systemone", h.serving(h.systemone, "systemone"), methods=["POST"]),
            Route("/v1/models", h.models, methods=["GET"]),
            Route("/control", h.control, methods=["POST"]),
            Route("/control/stats", h.stats, methods=["GET"]),
            Route("/control/reset", h.reset, methods=["POST"]),
        ]
    )


def serve(port: int) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)  # accept connections (queued) from the moment READY is printed
    config = uvicorn.Config(
        build_app(State()), log_level="warning", access_log=False, backlog=2048, timeout_keep_alive=30
    )
    server = uvicorn.Server(config)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])


class FakeServer:
    """Starts the server in a subprocess; `url` is its /v1 base URL. Use as a context manager."""

    def __init__(self, **settings: Any):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agents.testing", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("READY"):
            self.proc.kill()
            raise RuntimeError(f"fake server failed to start: {line!r}")
        self.port = int(line.split()[1])
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.root}/v1"
        if settings:
            self.control(**settings)

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.root + path, data=data, headers={"content-type": "application/json"}
        )
        with _NO_PROXY.open(req, timeout=10) as r:
            return json.loads(r.read())

    def control(self, **settings: Any) -> None:
        self._call("/control", settings)

    def stats(self) -> dict[str, Any]:
        return self._call("/control/stats")

    def reset(self, **settings: Any) -> None:
        self._call("/control/reset", {})
        if settings:
            self.control(**settings)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8000)
    serve(parser.parse_args(argv).port)
