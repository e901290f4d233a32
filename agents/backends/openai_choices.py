"""Choice probabilities from an OpenAI-compatible server, by the best method it offers.

`logprobs`: chat top-logprobs of the first reply token. `echo`: the prompt (the chat template
rendered here) with each choice appended, sent to /v1/completions with `echo` so the server returns
the logprob of every prompt token; the choice's tokens give log p(choice | prompt), exact for
choices of several tokens too. `completion_logprobs`: top-logprobs of a one-token /v1/completions.
`systemone`: transformers serve's /v1/systemone, which reads the logits of the labels ("Yes"/"No",
or letters for other choices) after the prompt plus its own one-line instruction ("Answer Yes or No
only."): exact probabilities of a slightly longer prompt. `sampled`: the frequency of each choice
over sampled replies, for a server with no logprobs at all. `auto` tries them in that order on the
first call and keeps the first that works.

A mixin of `OpenAIBackend`: it calls the backend's `_create` (one request) and `generate`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agents.errors import FatalModelError, NoChoiceProbsError
from agents.types import ChoiceProbs, GenerateParams, Message, Usage, normalise

if TYPE_CHECKING:
    from agents.chat_template import ChatTemplate
    from agents.config import OpenAIOptions
    from agents.types import Completion

log = logging.getLogger(__name__)

#: A method's request the server answered with one of these does not exist there (not an error of
#: the request itself): while probing (`auto`), the next method is tried.
UNSUPPORTED_STATUS = (400, 404, 405, 422, 501)


class Unsupported(Exception):
    """The server does not offer this way of scoring choices."""


class NotInTop(Exception):
    """No choice is among the first token's top logprobs (`seen`); `usage` is what asking cost."""

    def __init__(self, seen: list[str], usage: Usage):
        super().__init__(seen)
        self.seen, self.usage = seen, usage


def first_choice(text: str, choices: Sequence[str]) -> str | None:
    """The choice a free-text reply names first, as a whole word, any case ("Well, yes." → "Yes");
    at the same place the longer choice wins ("Not sure" over "No"). None if it names none."""
    best: tuple[int, int, str] | None = None
    for c in choices:
        m = re.search(rf"(?<!\w){re.escape(c)}(?!\w)", text, flags=re.IGNORECASE)
        if m and (best is None or (m.start(), -len(c)) < best[:2]):
            best = (m.start(), -len(c), c)
    return None if best is None else best[2]


def echoed_logprob(logprobs: Any, choice: str, generated: int) -> float:
    """The summed logprob of the echoed prompt's last tokens, as many as spell `choice`: the
    prompt ended with it, and `generated` tokens past the prompt come last. Read from the end,
    not from `text_offset`, whose origin differs between servers (llama.cpp counts special tokens
    as empty text); a token spanning the seam counts, as in lm-eval-harness."""
    tokens = getattr(logprobs, "tokens", None)
    values = getattr(logprobs, "token_logprobs", None)
    if not tokens or not values or len(tokens) != len(values):
        raise Unsupported("/v1/completions echoes no prompt logprobs")
    end = len(tokens) - generated
    total, spelled, k = 0.0, 0, end
    while spelled < len(choice) and k > 0:
        k -= 1
        if values[k] is None:
            raise Unsupported("the echoed choice has no logprob")
        total += values[k]
        spelled += len(tokens[k])
    if k == end or spelled < len(choice):  # only the generated token came back: no echo
        raise Unsupported("/v1/completions does not echo the prompt")
    return total


class ChoiceScoring:
    """`choice_probs` for `OpenAIBackend`, by `options.choice_method`."""

    name: str
    options: OpenAIOptions
    template: ChatTemplate | None
    method: str | None  # forced by the config, or found by the first call (auto)
    _warned_same_samples: bool

    async def _create(self, endpoint: str = "chat", *, max_tokens: int, **kw: Any) -> Any: ...

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion: ...

    async def choice_probs(self, messages: Sequence[Message], choices: Sequence[str]) -> ChoiceProbs:
        t0 = time.perf_counter()
        if self.method is not None:  # forced, or found by an earlier call
            try:
                return await self._score(self.method, messages, choices, t0)
            except Unsupported as e:
                raise FatalModelError(f"{self.name}: choice_method {self.method}: {e}") from None
            except FatalModelError as e:
                raise FatalModelError(f"choice_method {self.method}: {e}", status=e.status) from None
        tried = []
        for method in self._auto_order():
            try:
                result = await self._score(method, messages, choices, t0)
            except Unsupported as e:
                tried.append(f"{method}: {e}")
                continue
            self._found(method, tried)
            return result
        hint = "" if self.template else "; set openai.chat_template to try /v1/completions too"
        raise FatalModelError(
            f"{self.name}: the server offers no way to score choices ({'; '.join(tried)}){hint}"
        )

    def _auto_order(self) -> list[str]:
        completions = ["echo", "completion_logprobs"] if self.template is not None else []
        sampled = ["sampled"] if self.options.choice_probs_fallback == "sample" else []
        return ["logprobs", *completions, "systemone", *sampled]

    def _found(self, method: str, tried: list[str]) -> None:
        if self.method == method:  # calls probing side by side: the first to finish has said it
            return
        self.method = method
        if method == "sampled":
            hint = "" if self.template else " (openai.chat_template lets it try /v1/completions logprobs)"
            log.warning(
                "%s: the server returned no logprobs%s; choice_probs falls back to the frequency of "
                "each choice over %d sampled answers",
                self.name,
                hint,
                self.options.fallback_samples,
            )
        elif tried:
            log.info("%s: choices are scored by %s (%s)", self.name, method, "; ".join(tried))

    async def _score(
        self, method: str, messages: Sequence[Message], choices: Sequence[str], t0: float
    ) -> ChoiceProbs:
        if method == "sampled":
            return await self._sampled_probs(messages, choices, t0)
        try:
            if method == "logprobs":
                raw, usage = await self._chat_logprobs(messages, choices)
            elif method == "echo":
                raw, usage = await self._echo(messages, choices)
            elif method == "systemone":
                raw, usage = await self._systemone(messages, choices)
            else:
                raw, usage = await self._completion_logprobs(messages, choices)
        except NotInTop as e:
            if self.template is None:
                raise NoChoiceProbsError(
                    f"{self.name}: none of {list(choices)} among the top-{len(e.seen)} first tokens {e.seen}"
                ) from None
            # The choices are not among the first token's top-k (a reply that begins "Sure,"): echo
            # scores each exactly, however unlikely, as the prompt can be rendered here.
            raw, usage = await self._echo(messages, choices)
            usage, method = usage + e.usage, "echo"
        except FatalModelError as e:
            if self.method is None and e.status in UNSUPPORTED_STATUS:  # probing: not offered here
                raise Unsupported(f"HTTP {e.status}") from None
            raise
        probs, mass = normalise(raw, choices)
        return ChoiceProbs(
            probs=probs,
            method=method,  # type: ignore[arg-type]
            mass=mass,
            usage=usage,
            seconds=time.perf_counter() - t0,
            model=self.name,
        )

    async def _chat_logprobs(
        self, messages: Sequence[Message], choices: Sequence[str]
    ) -> tuple[dict[str, float], Usage]:
        resp = await self._create(
            messages=[m.model_dump() for m in messages],
            temperature=0.0,
            logprobs=True,
            top_logprobs=self.options.top_logprobs,
            max_tokens=1,
        )
        lp = resp.choices[0].logprobs
        if lp is None or not lp.content or not lp.content[0].top_logprobs:
            raise Unsupported("chat completions carry no logprobs")
        top = [(t.token, t.logprob) for t in lp.content[0].top_logprobs]
        return self._top_tokens(top, choices, response_usage(resp))

    def _prompt(self, messages: Sequence[Message]) -> str:
        if self.template is None:
            raise Unsupported("/v1/completions takes raw text: set openai.chat_template")
        return self.template.render(messages)

    async def _completion_logprobs(
        self, messages: Sequence[Message], choices: Sequence[str]
    ) -> tuple[dict[str, float], Usage]:
        resp = await self._create(
            "completions",
            prompt=self._prompt(messages),
            temperature=0.0,
            logprobs=self.options.top_logprobs,
            max_tokens=1,
        )
        lp = resp.choices[0].logprobs
        tops = getattr(lp, "top_logprobs", None) if lp is not None else None
        if not tops or not tops[0]:
            raise Unsupported("/v1/completions carries no top logprobs")
        return self._top_tokens(list(tops[0].items()), choices, response_usage(resp))

    async def _echo(
        self, messages: Sequence[Message], choices: Sequence[str]
    ) -> tuple[dict[str, float], Usage]:
        """log p(choice | prompt) for each choice: the prompt with the choice appended, echoed
        back with the logprob of every prompt token (`echoed_logprob` finds the choice's)."""
        prompt = self._prompt(messages)
        resps = await asyncio.gather(
            *[
                self._create(
                    "completions", prompt=prompt + c, echo=True, logprobs=1, temperature=0.0, max_tokens=1
                )
                for c in choices
            ]
        )
        raw: dict[str, float] = {}
        usage = Usage()
        for c, resp in zip(choices, resps, strict=True):
            u = response_usage(resp)  # the scored prompt; the token generated past it is not ours
            generated = u.output_tokens if getattr(resp, "usage", None) is not None else 1
            raw[c] = math.exp(echoed_logprob(resp.choices[0].logprobs, c, generated))
            usage = usage + Usage(input_tokens=u.input_tokens)
        return raw, usage

    async def _systemone(
        self, messages: Sequence[Message], choices: Sequence[str]
    ) -> tuple[dict[str, float], Usage]:
        """A yes/no question (`noul`) when the choices are Yes and No, else a `choice` question
        whose options the server labels A, B, ...; the state is the conversation's text."""
        state = "\n\n".join(m.content for m in messages if m.role != "system")
        yes_no = sorted(c.lower() for c in choices) == ["no", "yes"]
        question = {"type": "noul"} if yes_no else {"type": "choice", "criteria": dict.fromkeys(choices)}
        resp = await self._create("systemone", max_tokens=1, state=state, questions={"verdict": question})
        answer = resp.get("answers", {}).get("verdict") if isinstance(resp, dict) else None
        if not isinstance(answer, dict):
            raise Unsupported("/v1/systemone gave no answer")
        if yes_no:
            p = float(answer["noul"])
            raw = {c: p if c.lower() == "yes" else 1.0 - p for c in choices}
        else:
            raw = {c: float(answer["probabilities"][c]) for c in choices}
        tokens = int(resp.get("usage", {}).get("input_tokens", 0))
        return raw, Usage(input_tokens=tokens)

    def _top_tokens(
        self, top: list[tuple[str, float]], choices: Sequence[str], usage: Usage
    ) -> tuple[dict[str, float], Usage]:
        """ " Yes" and "Yes" are the same answer: sum every top token that strips to a choice."""
        raw = {c: sum(math.exp(lp) for tok, lp in top if tok.strip() == c) for c in choices}
        if not any(raw.values()):
            raise NotInTop([tok for tok, _ in top], usage)
        return raw, usage

    async def _sampled_probs(
        self, messages: Sequence[Message], choices: Sequence[str], t0: float
    ) -> ChoiceProbs:
        n = self.options.fallback_samples
        usage = Usage()
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


def response_usage(resp: Any) -> Usage:
    """Token counts of a response (zero when the server reports none)."""
    u = getattr(resp, "usage", None)
    if u is None:
        return Usage()
    return Usage(input_tokens=u.prompt_tokens or 0, output_tokens=u.completion_tokens or 0)
