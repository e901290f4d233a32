"""Quotes marked <quote>…</quote> by a speaker, checked against the privileged context (Khan et
al. 2024): verified quotes are shown to the judge as <v_quote>, others as <u_quote>. A quote is
verified when it has at least MIN_WORDS words that appear whole, in order, in the context (case
and punctuation ignored), so "e" or "carbon" inside "hydrocarbons" is not."""

from __future__ import annotations

import re

from graphs.types import Quote

QUOTE = re.compile(r"<quote>(.*?)</quote>", re.S | re.I)


MIN_WORDS = 3  # shorter "quotes" (a single word like "carbon") prove nothing


def _norm(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces: only the words have to match."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def check_quotes(text: str, context: str, min_words: int = MIN_WORDS) -> tuple[Quote, ...]:
    """A quote is verified when its words appear, whole and in order, in the context."""
    ctx = f" {_norm(context)} "
    out = []
    for q in QUOTE.findall(text):
        words = _norm(q)
        ok = len(words.split()) >= min_words and f" {words} " in ctx
        out.append(Quote(text=q.strip(), verified=ok))
    return tuple(out)


def tag_quotes(text: str, quotes: tuple[Quote, ...]) -> str:
    """The turn as the judge sees it: each <quote> becomes <v_quote> or <u_quote>."""
    marks = iter(quotes)

    def sub(m: re.Match[str]) -> str:
        q = next(marks, None)
        tag = "v_quote" if q is not None and q.verified else "u_quote"
        return f"<{tag}>{m.group(1)}</{tag}>"

    return QUOTE.sub(sub, text)
