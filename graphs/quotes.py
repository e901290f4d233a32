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
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from functools import lru_cache
from itertools import accumulate
from typing import NamedTuple

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
# (Written to start with one character class, which the regex engine scans for quickly: the same
# matches as `[.!?…]+[\"'”’)\]]*(?=\s+(?![a-z\s])|\s*$)|\n`, at a third of the cost.)
_PASSAGE_END = re.compile(r"[.!?…\n](?:(?<=\n)|[.!?…]*[\"'”’)\]]*(?=\s+(?![a-z\s])|\s*$))")
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


def _abbreviation(text: str, at: int) -> bool:
    """The "." at `at` follows an abbreviation ("Dr", "e.g")."""
    token = _LAST_TOKEN.search(text[max(0, at - 12) : at])
    return token is not None and _ABBREV.fullmatch(token.group().lower()) is not None


def _passage_ends(text: str) -> Iterator[re.Match[str]]:
    """Where the passage's sentences end, in order (abbreviations are no ends)."""
    for m in _PASSAGE_END.finditer(text):
        if not (m.group().startswith(".") and _abbreviation(text, m.start())):
            yield m


def _words_and_breaks(text: str) -> tuple[list[str], set[int]]:
    """The normalized words of a quote, and the word positions where one of its sentences ends."""
    words: list[str] = []
    breaks: set[int] = set()
    at = 0
    for m in _QUOTE_END.finditer(text):
        words += _norm(text[at : m.start()])
        breaks.add(len(words))
        at = m.end()
    words += _norm(text[at:])
    return words, breaks


class _Passage(NamedTuple):
    """A passage indexed for quote search: its normalized words joined by single spaces, and the
    offsets in `text` where a word follows one of its sentence ends, ascending."""

    text: str
    breaks: array[int]


_SENTINEL = "\x00"  # marks a sentence end while the whole passage is normalized at once
_NOT_WORD_OR_END = re.compile(r"[^\w\s\x00]")


@lru_cache(maxsize=128)
def _passage_index(context: str) -> _Passage:
    """The passage's words and sentence ends, as `_norm` of each sentence would give them, with
    one normalization pass over the whole text. Cached: a debate checks every turn against the
    same passage (about 50 kB an entry for a 6,000-word one)."""
    segments, at = [], 0
    for m in _passage_ends(context):
        segments.append(context[at : m.start()])
        at = m.end()
    segments.append(context[at:])
    text = _SENTINEL.join(s.replace(_SENTINEL, " ") for s in segments)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", "".join(c for c in text if unicodedata.category(c) != "Cf"))
    *sentences, last = _NOT_WORD_OR_END.sub(" ", text.lower()).split(_SENTINEL)
    pieces: list[str] = []
    breaks = array("q")
    size = -1  # length of " ".join(pieces), less one for the space the next word would follow
    for sentence in sentences:
        if words := " ".join(sentence.split()):
            pieces.append(words)
            size += len(words) + 1
        breaks.append(size + 1)  # where the next word starts
    pieces.append(" ".join(last.split()))
    return _Passage(" ".join(p for p in pieces if p), breaks)


def _verified(quote: str, passage: _Passage, min_words: int) -> bool:
    """The quote's words appear whole and in order in the passage, crossing none of its sentence
    ends the quote does not cross itself. Words hold no spaces, so a match of the joined words
    that starts and ends at a space (or an end) is a match of the word sequence."""
    words, breaks = _words_and_breaks(quote)
    if len(words) < min_words:
        return False
    needle = " ".join(words)
    starts = list(accumulate((len(w) + 1 for w in words), initial=0))
    own = {starts[b] for b in breaks}  # where the quote's own sentence ends fall, in `needle`
    text, ends = passage
    at = text.find(needle)
    while at >= 0:
        end = at + len(needle)
        if (at == 0 or text[at - 1] == " ") and (end == len(text) or text[end] == " "):
            inside = ends[bisect_right(ends, at) : bisect_left(ends, end)]
            if all(b - at in own for b in inside):
                return True
        at = text.find(needle, at + 1)
    return False


def check_quotes(text: str, context: str, min_words: int = MIN_WORDS) -> tuple[Quote, ...]:
    """Each <quote> of the turn (forged verifier tags stripped first), verified or not."""
    found = QUOTE.findall(strip_verifier_tags(text))
    if not found:
        return ()
    passage = _passage_index(context)
    return tuple(Quote(text=q.strip(), verified=_verified(q, passage, min_words)) for q in found)


def cut_at_sentence(text: str, limit: int) -> str:
    """The longest beginning of `text` of at most `limit` characters that ends where one of its
    sentences does, by the rule quotes are checked with (so a quote of the kept part verifies as
    it would against the whole); with no sentence end that early, its whole words up to `limit`
    (a single longer word is cut at `limit`). `text` itself when it fits."""
    if len(text) <= limit:
        return text
    cut = 0
    for m in _passage_ends(text):
        end = m.start() if m.group() == "\n" else m.end()  # a line ends before its break
        if end > limit:
            break
        cut = end
    if kept := text[:cut].rstrip():
        return kept
    head = text[: limit + 1]
    space = max(head.rfind(c) for c in " \t\n\r")
    return (head[:space].rstrip() if space > 0 else "") or text[:limit]


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
