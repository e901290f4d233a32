"""The privileged passage within a prompt budget (`GraphSpec.max_context_tokens`).

Tokens are estimated without a tokenizer (API models have none to hand): a passage of N
characters counts ceil(N / 4) tokens, the estimate `agents.model.estimate_tokens` uses for rate
limits. So a budget of B tokens holds 4·B characters. Over it, `on_long_context` decides:
`truncate` keeps the beginning, cut at the last sentence end that fits (the sentence rule quote
verification uses, `graphs.quotes.cut_at_sentence`); `error` fails the row with
`PassageTooLong`, a ValueError, which a labelling run records as that row's failure
(`graphs.batch.ROW_ERRORS`).

Whoever is shown the passage (speakers; the judge or overseer only where configured) is shown the
cut one, followed by `TRUNCATED` on a line of its own, the two within the budget; quotes are
checked against the cut one, without the marker, so a quote from beyond the cut is unverified.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from graphs.quotes import cut_at_sentence

CHARS_PER_TOKEN = 4
#: Shown after a cut passage, so a speaker does not argue that the passage never says what its
#: missing part does. On its own line: no sentence of the passage runs into it.
TRUNCATED = "\n[… passage truncated]"
OnLong = Literal["truncate", "error"]


class PassageTooLong(ValueError):
    """A passage over its budget with `on_long_context: error`."""


def estimate_tokens(text: str) -> int:
    """ceil(characters / 4)."""
    return -(-len(text) // CHARS_PER_TOKEN)


@lru_cache(maxsize=128)
def fit(context: str, max_tokens: int | None, on_long: OnLong = "truncate") -> str:
    """The passage within `max_tokens` (None: no limit): itself when it fits, else cut at a
    sentence end (`truncate`) or PassageTooLong (`error`)."""
    if max_tokens is None or estimate_tokens(context) <= max_tokens:
        return context
    if on_long == "error":
        raise PassageTooLong(
            f"the passage is {len(context):,} characters, about {estimate_tokens(context):,} tokens "
            f"({CHARS_PER_TOKEN} characters a token), over max_context_tokens: {max_tokens:,} "
            "(on_long_context: error; truncate would keep its beginning up to a sentence end)"
        )
    # The marker counts within the budget: cut + marker is at most 4·B characters.
    return cut_at_sentence(context, max(1, max_tokens * CHARS_PER_TOKEN - len(TRUNCATED)))


def shown(context: str, max_tokens: int | None, on_long: OnLong = "truncate") -> str:
    """The passage as a prompt shows it: `fit`, and the marker when it was cut."""
    cut = fit(context, max_tokens, on_long)
    return cut if len(cut) == len(context) else cut + TRUNCATED
