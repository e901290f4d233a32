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
default templates of `graphs.debate.Prompts` and `graphs.interaction.InteractionPrompts`; change
`ExtractiveOptions` when you change those templates.

Graded debaters (issue 20): `recall` (the chance it reads each sentence), `skill` (the chance it
quotes the best sentence it read, else a random one) and `honesty` (the chance a quote is real,
else made up for its side, which the quote check marks unverified) make weaker readers and liars,
each draw seeded by the call's seed, so a run is reproducible and best-of-N candidates differ.

It cannot judge (`choice_probs` raises) unless `judge: true`: then it is the offline quote-weighing
judge. It never sees the passage, only the quotes in the transcript: a quote the check verified
(or any quote, when quotes are not checked) that mentions the proposed answer supports it, the more
the more of the question's words it shares; a question-relevant quote the *incorrect* side gives
that does not mention the answer counts against it; unverified quotes count for nothing; with no
support at all it leans No. p(Yes) = sigmoid(4 · (support − against) − 1), weights fixed a priori.
"""

from __future__ import annotations

import hashlib
import math
import random
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
# A debater's turn as a judge's transcript shows it, and the quotes a judge may trust in it: checked
# ones, or any when the debate does not check quotes (an unverified one is `<u_quote>`).
_TURN = re.compile(r"\(argues the answer is (correct|incorrect)\): (.*)$", re.M)
_TRUSTED_QUOTE = re.compile(r"<(?:v_quote|quote)>(.*?)</(?:v_quote|quote)>", re.S)


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


#: What `w2sg models check` asks the reader: a consultancy turn as the default templates write it
#: (it answers only prompts its patterns read, not a free question).
CHECK_PROMPT = (
    "You are a consultant. Question: What do objects fall towards?\nProposed answer: the Earth\n"
    "Source passage (hidden from the judge): Gravity pulls objects towards the Earth. Air slows "
    "light objects down.\nIn at most 20 words, argue that the proposed answer is correct."
)


class ExtractiveBackend:
    check_prompt = CHECK_PROMPT

    def __init__(self, name: str = "extractive", options: ExtractiveOptions | None = None):
        self.name = name
        self.default_concurrency = 1024
        self.options = options or ExtractiveOptions()
        o = self.options
        if not o.judge:
            self.not_checkable = {"choice_probs": "a reader: it quotes and cannot judge"}
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

    def _question_answer(self, prompt: str) -> tuple[str, str]:
        question, answer = self._field("question", prompt), self._field("answer", prompt)
        if question is None or answer is None:
            raise FatalModelError(
                f"{self.name}: no question/answer in the prompt (patterns question_pattern / answer_pattern)"
            )
        return question, answer

    def reply(self, prompt: str, seed: int | None = None) -> str:
        question, answer = self._question_answer(prompt)
        limit = int(self._field("limit", prompt) or 60)
        passage = sentences(self._field("passage", prompt) or "")
        if not passage:
            return "The passage gives no evidence either way."
        side = self._field("side", prompt)
        o = self.options
        if side is not None and (o.recall, o.skill, o.honesty) != (None, None, None):
            return self._graded(prompt, question, answer, side, passage, limit, seed)
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

    def _graded(
        self,
        prompt: str,
        question: str,
        answer: str,
        side: str,
        passage: list[str],
        limit: int,
        seed: int | None,
    ) -> str:
        """A debater of graded strength: the plain reader's choice through `recall`, `skill` and
        `honesty` draws, seeded by the call's seed (and what it is about)."""
        o = self.options
        blob = f"{seed}|{question}|{answer}|{side}"
        rng = random.Random(int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big"))
        lead = f"The passage {'supports' if side == 'correct' else 'points away from'} {answer}:"
        if rng.random() >= (1.0 if o.honesty is None else o.honesty):  # a made-up quote for its side
            made_up = f"{answer} is the answer" if side == "correct" else f"the answer is not {answer}"
            return self._say(lead, made_up, limit)
        mine = "\n".join(line for line in prompt.splitlines() if f"argues the answer is {side})" in line)
        fresh = [s for s in passage if s[:80] not in mine] or passage
        recall = 1.0 if o.recall is None else o.recall
        read = [s for s in fresh if rng.random() < recall]
        if not read:
            return f"I found nothing in the passage on whether {answer} is right."
        if side == "correct":
            ranked = [s for _, s in rank(read, words(question) + words(answer))]
            order = [s for s in ranked if mentions(s, answer)] + [
                s for s in ranked if not mentions(s, answer)
            ]
        else:
            order = [s for _, s in rank(read, words(question)) if not mentions(s, answer)]
            if not order:
                return f"The passage does not settle that {answer} is right."
        best = rng.random() < (1.0 if o.skill is None else o.skill)
        return self._say(lead, order[0] if best else rng.choice(order), limit)

    def judge_p(self, prompt: str) -> float:
        """p(Yes) of the quote-weighing judge (module docstring): support for the answer against
        evidence pointing away from it, in the quotes of the transcript it is shown."""
        question, answer = self._question_answer(prompt)
        asked = set(words(question))
        support = against = 0.0
        for side, text in _TURN.findall(prompt):
            for quote in _TRUSTED_QUOTE.findall(text):
                relevance = len(asked & set(words(quote))) / max(1, len(asked))
                if mentions(quote, answer):
                    support = max(support, 1.0 + relevance)
                elif side == "incorrect":
                    against = max(against, relevance)
        return 1.0 / (1.0 + math.exp(-(4.0 * (support - against) - 1.0)))

    @staticmethod
    def _say(lead: str, sentence: str, limit: int) -> str:
        # A prefix of the sentence is still a verbatim quote; keep the whole turn within the limit.
        room = max(3, limit - len(lead.split()))
        return f"{lead} <quote>{' '.join(sentence.split()[:room])}</quote>"

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        t0 = time.perf_counter()
        prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
        text = self.reply(prompt, params.seed)
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
        if not self.options.judge:
            raise FatalModelError(
                f"{self.name} only quotes and cannot judge; use a prompted or trained judge "
                "(or `extractive: {judge: true}`, the quote-weighing judge)"
            )
        if len(choices) != 2:
            raise FatalModelError(f"{self.name}: the quote-weighing judge scores 2 choices (Yes, No)")
        t0 = time.perf_counter()
        prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
        p = self.judge_p(prompt)
        return ChoiceProbs(
            probs={choices[0]: p, choices[1]: 1.0 - p},
            method="extractive",
            usage=Usage(input_tokens=sum(len(m.content.split()) for m in messages), output_tokens=1),
            seconds=time.perf_counter() - t0,
            model=self.name,
        )

    async def aclose(self) -> None:
        return None


def from_spec(spec: ModelSpec) -> ExtractiveBackend:
    """The `extractive` provider's factory (agents.providers)."""
    return ExtractiveBackend(spec.name, spec.extractive)
