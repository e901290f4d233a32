"""Quotes marked <quote>…</quote> by a speaker, checked against the privileged context (Khan et
al. 2024): verified quotes are shown to the judge as <v_quote>, others as <u_quote>."""

from __future__ import annotations

import re

from graphs.types import Quote

QUOTE = re.compile(r"<quote>(.*?)</quote>", re.S | re.I)


def _norm(text: str) -> str:
    """Case, whitespace and surrounding punctuation do not change whether a quote is verbatim."""
    return " ".join(text.lower().split()).strip(" .,;:!?\"'")


def check_quotes(text: str, context: str) -> tuple[Quote, ...]:
    ctx = _norm(context)
    return tuple(
        Quote(text=q.strip(), verified=bool(_norm(q)) and _norm(q) in ctx) for q in QUOTE.findall(text)
    )


def tag_quotes(text: str, quotes: tuple[Quote, ...]) -> str:
    """The turn as the judge sees it: each <quote> becomes <v_quote> or <u_quote>."""
    marks = iter(quotes)

    def sub(m: re.Match[str]) -> str:
        q = next(marks, None)
        tag = "v_quote" if q is not None and q.verified else "u_quote"
        return f"<{tag}>{m.group(1)}</{tag}>"

    return QUOTE.sub(sub, text)
