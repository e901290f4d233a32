"""`extractive`: a reader that argues by quoting, the offline stand-in for a strong debater.

SmolLM2-135M, the only generative model shipped offline, does not argue its assigned side (every
turn reads "The proposed answer is incorrect.", README), so a debate with it carries no signal.
This backend does what a strong reader with the passage would do, with no learned weights: it
ranks the passage's sentences by IDF-weighted word overlap with the claim and quotes the best one
for its side. Arguing *correct*, it quotes the sentence that best supports the proposed answer;
arguing *incorrect*, the best-matching sentence that does not mention the answer (the evidence
that points elsewhere). As an assistant (no side), it quotes the best sentences and states a
stance: correct when the answer's words appear in them.

It reads the fields it needs from the prompt text with configurable patterns that match the
default templates of `graphs.config.Prompts` and `graphs.interaction.InteractionPrompts`; change
`ExtractiveOptions` when you change those templates. It cannot judge (`choice_probs` raises).
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Sequence

from agents.config import ExtractiveOptions, ModelSpec
from agents.errors import FatalModelError
from agents.types import ChoiceProbs, Completion, GenerateParams, Message, Usage

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
# Words that match everywhere and decide nothing.
_STOP_WORDS = (
    "a an and are as at be been by can do does for from has have how in is it its of on or that the "
    "their these this those to was were what when where which who why will with"
)
STOP = frozenset(_STOP_WORDS.split())


def words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOP]


def sentences(passage: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(passage.strip()) if len(s.split()) >= 3]


def rank(passage_sents: Sequence[str], query: Sequence[str]) -> list[tuple[float, str]]:
    """Sentences by IDF-weighted overlap with the query words (IDF over the passage's sentences),
    best first; ties keep passage order."""
    bags = [set(words(s)) for s in passage_sents]
    df = Counter(w for b in bags for w in b)
    n = len(bags)
    # Rounded: equal scores reached by different float sums must tie (and then keep passage
    # order); unrounded, the last bit decided, and it followed a set's order, so PYTHONHASHSEED
    # changed a demo label between runs. Summed in sorted order for the same reason.
    terms = sorted(set(query))
    scored = [
        (round(sum(math.log(1 + n / df[w]) for w in terms if w in b), 9), -i, s)
        for i, (b, s) in enumerate(zip(bags, passage_sents, strict=True))
    ]
    return [(score, s) for score, _, s in sorted(scored, reverse=True)]


def mentions(sentence: str, answer: str) -> bool:
    """The sentence contains every content word of the answer (or the answer itself when it has
    none, e.g. a number)."""
    need = set(words(answer)) or set(_WORD.findall(answer.lower()))
    return bool(need) and need <= set(_WORD.findall(sentence.lower()))


class ExtractiveBackend:
    def __init__(self, name: str = "extractive", options: ExtractiveOptions | None = None):
        self.name = name
        self.default_concurrency = 1024
        self.options = options or ExtractiveOptions()
        o = self.options
        self._pat = {
            k: re.compile(p, re.M)
            for k, p in (
                ("question", o.question_pattern),
                ("answer", o.answer_pattern),
                ("passage", o.passage_pattern),
                ("side", o.side_pattern),
                ("limit", o.word_limit_pattern),
            )
        }

    def _field(self, key: str, prompt: str) -> str | None:
        m = self._pat[key].search(prompt)
        return m.group(1).strip() if m else None

    def reply(self, prompt: str) -> str:
        question, answer = self._field("question", prompt), self._field("answer", prompt)
        if question is None or answer is None:
            raise FatalModelError(
                f"{self.name}: no question/answer in the prompt (patterns question_pattern / answer_pattern)"
            )
        limit = int(self._field("limit", prompt) or 60)
        passage = sentences(self._field("passage", prompt) or "")
        if not passage:
            return "The passage gives no evidence either way."
        side = self._field("side", prompt)
        # A later turn quotes what this speaker has not quoted yet (its own earlier turns are in
        # the transcript; the opponent's quotes may be quoted back).
        mine = "\n".join(
            line
            for line in prompt.splitlines()
            if (side and f"argues the answer is {side})" in line) or line.startswith("assistant:")
        )
        fresh = [s for s in passage if s[:80] not in mine] or passage
        ranked = rank(fresh, words(question) + words(answer))
        if side == "correct":
            # The best evidence for the answer mentions it; without any, the closest sentence.
            support = [s for _, s in ranked if mentions(s, answer)]
            return self._say(f"The passage supports {answer}:", (support or [ranked[0][1]])[0], limit)
        if side == "incorrect":
            other = [s for _, s in rank(fresh, words(question)) if not mentions(s, answer)]
            if not other:
                return f"The passage does not settle that {answer} is right."
            return self._say(f"The passage points away from {answer}:", other[0], limit)
        best = [s for _, s in ranked[: self.options.assistant_quotes]]
        stance = "correct" if any(mentions(s, answer) for s in best) else "incorrect"
        quotes = " ".join(f"<quote>{s}</quote>" for s in best)
        return f"Relevant background: {quotes} STANCE: {stance}"

    @staticmethod
    def _say(lead: str, sentence: str, limit: int) -> str:
        # A prefix of the sentence is still a verbatim quote; keep the whole turn within the limit.
        room = max(3, limit - len(lead.split()))
        return f"{lead} <quote>{' '.join(sentence.split()[:room])}</quote>"

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        t0 = time.perf_counter()
        prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
        text = self.reply(prompt)
        return Completion(
            text=text,
            usage=Usage(
                input_tokens=sum(len(m.content.split()) for m in messages), output_tokens=len(text.split())
            ),
            seconds=time.perf_counter() - t0,
            model=self.name,
            finish_reason="stop",
        )

    async def choice_probs(self, messages: Sequence[Message], choices: Sequence[str]) -> ChoiceProbs:
        raise FatalModelError(f"{self.name} only quotes and cannot judge; use a prompted or trained judge")

    async def aclose(self) -> None:
        return None


def from_spec(spec: ModelSpec) -> ExtractiveBackend:
    """The `extractive` provider's factory (agents.providers)."""
    return ExtractiveBackend(spec.name, spec.extractive)
