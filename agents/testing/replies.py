"""What the test server answers: deterministic functions of the prompt, so a test knows the
probabilities a client should recover by any method (chat logprobs, /v1/completions echo or
top-logprobs, /v1/systemone, sampling)."""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from typing import Any

#: The chat template a client renders for this server's /v1/completions (`openai.chat_template`).
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
ASSISTANT = "<|assistant|>\n"


def first_tokens(p: float) -> list[tuple[str, float]]:
    """The first reply token's distribution, most likely first."""
    return sorted([("Yes", 0.9 * p), ("No", 0.9 * (1 - p)), ("Maybe", 0.1)], key=lambda t: -t[1])


def read_prompt(text: str) -> tuple[str, str]:
    """A rendered /v1/completions prompt → (the last user message, what follows the assistant marker)."""
    head, _, tail = text.rpartition(ASSISTANT)
    user = head.rpartition("<|user|>\n")[2].partition("<|end|>")[0]
    return user, tail


def completion_logprobs(text: str, body: dict[str, Any], echo: bool, generated: str) -> dict[str, Any]:
    """Legacy-completions logprobs: the prompt's tokens (template pieces, the prompt as one token, the
    continuation as one token) when echoed, then the generated token with its top-k."""
    user, tail = read_prompt(text)
    p = p_yes(user)
    dist = dict(first_tokens(p))
    k = int(body.get("logprobs") or 0)
    tokens: list[str] = []
    values: list[float | None] = []
    tops: list[dict[str, float] | None] = []
    if echo:
        head = text[: len(text) - len(tail)]
        tokens = [head, tail] if tail else [head]
        values = [None, *([math.log(dist.get(tail, 0.001))] if tail else [])]
        tops = [None] * len(tokens)
    tokens.append(generated)
    values.append(math.log(dist.get(generated, 0.001)))
    tops.append({t: math.log(q) for t, q in first_tokens(p)[:k]} if k else None)
    offsets = list(itertools.accumulate([0, *map(len, tokens)]))[:-1]
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


def p_yes(prompt: str) -> float:
    """The server's probability of "Yes" for a prompt (last user message), in [0.05, 0.95]."""
    h = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
    return 0.05 + 0.9 * h / 2**32


def reply(prompt: str, body: dict[str, Any], prefix: str = "", ignore_sampling: bool = False) -> str:
    p = p_yes(prompt)
    if (body.get("temperature") or 0) > 0 and not ignore_sampling:
        rng = random.Random(f"{body.get('seed')}|{prompt}")
        first = "Yes" if rng.random() < p else "No"
    else:
        first = "Yes" if p >= 0.5 else "No"
    text = f"{prefix}{first}, echo: {prompt}"
    limit = body.get("max_tokens") or body.get("max_completion_tokens") or 10**6
    text = " ".join(text.split(" ")[:limit])
    for s in body.get("stop") or []:
        if s in text:
            text = text[: text.index(s)]
    return text
