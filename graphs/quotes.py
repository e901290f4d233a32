"""Quotes marked <quote>…</quote> by a speaker, checked against the privileged context (Khan et
al. 2024): verified quotes are shown to the judge as <v_quote>, others as <u_quote>.

A quote is verified when it has at least MIN_WORDS words that appear whole and in order in the
context, with case, punctuation, whitespace and Unicode compatibility forms ignored, so "e" or
"carbon" inside "hydrocarbons" is not. It may not run across the end of a passage sentence unless
the quote itself breaks there (a ".", "!", "?" or line break): "organic molecules oxygen is"
does not verify against "...organic molecules. Oxygen is not.", while the verbatim
"organic molecules. Oxygen is not" does.

Only the verifier writes <v_quote> / <u_quote>: whatever a speaker wrote that looks like one is
stripped (its words kept) before the quotes are checked and before any judge reads the turn."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from graphs.types import Quote

QUOTE = re.compile(r"<quote>(.*?)</quote>", re.S | re.I)

MIN_WORDS = 3  # shorter "quotes" (a single word like "carbon") prove nothing

# Anything a judge could read as a verifier tag: either case, spaces or attributes inside the
# brackets, "_", "-" or nothing between the letters, and a tag left without its ">" (the bare
# "<v_quote" then goes, not the rest of the line).
VERIFIER_TAG = re.compile(r"<\s*/?\s*[uv][\s_-]*quote(?:[^<>\n]*>)?", re.I)

# A passage sentence ends at . ! ? (closing quotes or brackets may follow) before whitespace and
# a character that is not a lower-case letter; "pl. spermatogonia" or "www. kqed. org" (SciQ) do
# not end one, and "3.5 g" has no whitespace after its point. Every line break ends one too.
_PASSAGE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+(?![a-z\s])|\s*$)|\n")
# Abbreviations that precede capitals ("Dr. Smith", "e.g. Water"), so are not sentence ends.
_ABBREV = re.compile(r"(?:[a-z]\.)+[a-z]|mr|mrs|ms|dr|prof|st|vs|fig|figs|eq|al|cf|approx")
_LAST_TOKEN = re.compile(r"[\w.]+$")
# In a quote, every visible stop or line break counts, whatever follows it: the judge sees the
# break in "molecules. oxygen is" or "molecules.Oxygen is", so crossing the passage's there is fair.
_QUOTE_END = re.compile(r"[.!?…]+|\n")


def _skeleton(text: str) -> tuple[str, Sequence[int]]:
    """The text as a judge would read it, for finding tags: compatibility forms folded (a
    full-width "＜v_quote＞" is a tag too) and invisible format characters (zero-width space,
    soft hyphen) dropped; with, for each character, the index it came from."""
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Cf":
            continue
        for c in unicodedata.normalize("NFKC", ch):
            chars.append(c)
            origin.append(i)
    return "".join(chars), origin


def strip_verifier_tags(text: str) -> str:
    """The text with every would-be <v_quote> / <u_quote> tag removed and the words between kept.
    Repeated until none is left, since removing one can close another ("<<v_quote>v_quote>")."""
    while True:
        # ASCII folds to itself (and holds no format characters): the common case, kept cheap.
        skeleton, origin = (text, range(len(text))) if text.isascii() else _skeleton(text)
        spans = [(origin[m.start()], origin[m.end() - 1] + 1) for m in VERIFIER_TAG.finditer(skeleton)]
        if not spans:
            return text
        kept, at = [], 0
        for start, end in spans:
            kept.append(text[at:start])
            at = max(at, end)
        text = "".join(kept) + text[at:]


def _norm(text: str) -> list[str]:
    """Lower case, compatibility forms folded, punctuation to spaces: only the words have to match.
    Format characters go without a space, so a soft hyphen or zero-width space does not split a word."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", "".join(c for c in text if unicodedata.category(c) != "Cf"))
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def _abbreviation(before: str) -> bool:
    token = _LAST_TOKEN.search(before[-12:])
    return token is not None and _ABBREV.fullmatch(token.group().lower()) is not None


def _words_and_breaks(text: str, ends: re.Pattern[str], *, passage: bool) -> tuple[list[str], set[int]]:
    """The normalized words of `text`, and the word positions where one of its sentences ends."""
    words: list[str] = []
    breaks: set[int] = set()
    at = 0
    for m in ends.finditer(text):
        if passage and m.group().startswith(".") and _abbreviation(text[: m.start()]):
            continue
        words += _norm(text[at : m.start()])
        breaks.add(len(words))
        at = m.end()
    words += _norm(text[at:])
    return words, breaks


def _verified(quote: str, passage: tuple[list[str], set[int]], min_words: int) -> bool:
    words, breaks = _words_and_breaks(quote, _QUOTE_END, passage=False)
    ctx, ctx_breaks = passage
    n = len(words)
    if n < min_words:
        return False
    for s in range(len(ctx) - n + 1):
        if ctx[s : s + n] == words and all(b - s in breaks for b in ctx_breaks if s < b < s + n):
            return True
    return False


def check_quotes(text: str, context: str, min_words: int = MIN_WORDS) -> tuple[Quote, ...]:
    """Each <quote> of the turn (forged verifier tags stripped first), verified or not."""
    passage = _words_and_breaks(context, _PASSAGE_END, passage=True)
    return tuple(
        Quote(text=q.strip(), verified=_verified(q, passage, min_words))
        for q in QUOTE.findall(strip_verifier_tags(text))
    )


def tag_quotes(text: str, quotes: tuple[Quote, ...]) -> str:
    """The turn as the judge sees it: forged verifier tags stripped, then each <quote> becomes
    <v_quote> or <u_quote>. `quotes` come from check_quotes on the same text, which strips the
    same way, so the n-th quote here is the n-th one checked."""
    marks = iter(quotes)

    def sub(m: re.Match[str]) -> str:
        q = next(marks, None)
        tag = "v_quote" if q is not None and q.verified else "u_quote"
        return f"<{tag}>{m.group(1)}</{tag}>"

    return QUOTE.sub(sub, strip_verifier_tags(text))
