"""What each participant is shown: prompts built from state, one function per audience. Keeping
this in one place is what makes "the judge never sees the privileged context" checkable."""

from __future__ import annotations

from collections.abc import Sequence

from graphs.quotes import strip_verifier_tags, tag_quotes
from graphs.spec import GraphSpec
from graphs.types import Side, Turn

CLAIM = {"correct": "correct", "incorrect": "incorrect"}


def speaker_label(t: Turn, names: dict[Side, str] | None = None) -> str:
    if t.kind == "question":
        return "Judge (question)"
    if t.side is not None and names is not None:
        return f"{names[t.side]} (argues the answer is {t.side})"
    if t.side is not None:
        return f"{t.speaker} (argues the answer is {t.side})"
    return t.speaker


def transcript_for_speakers(turns: Sequence[Turn]) -> str:
    """Speakers see every earlier turn as written (not the protagonist's choice: a record only)."""
    shown = [t for t in turns if t.kind != "choice"]
    return "\n".join(f"[round {t.round}] {speaker_label(t)}: {t.text}" for t in shown) or "(nothing yet)"


def judge_turns(
    turns: Sequence[Turn], order: Sequence[Side] = ("correct", "incorrect"), *, tag: bool = True
) -> list[tuple[int, str, str]]:
    """(round, speaker label, text) as a judge sees them: debaters as A and B in `order`
    (position swap flips it), turns of a round in that order, quotes tagged verified /
    unverified (untagged with `tag=False`; a verifier tag a speaker wrote is stripped either way,
    since the judge prompt vouches for them). Never the context itself. A human judge's page
    shows the same (`oversight.web`)."""
    names: dict[Side, str] = {side: f"Debater {'AB'[i]}" for i, side in enumerate(order)}
    turns = [t for t in turns if t.kind != "choice"]  # sides: open: who chose what is not shown
    rank = {side: i for i, side in enumerate(order)}

    def key(t: Turn) -> tuple[int, int]:
        return (t.round, -1 if t.kind == "question" else rank.get(t.side, 0) if t.side else 0)

    ordered = sorted(turns, key=key) if any(t.side for t in turns) else list(turns)
    shown = [tag_quotes(t.text, t.quotes) if tag else strip_verifier_tags(t.text) for t in ordered]
    return [(t.round, speaker_label(t, names), x) for t, x in zip(ordered, shown, strict=True)]


def transcript_for_judge(
    turns: Sequence[Turn], order: Sequence[Side] = ("correct", "incorrect"), *, tag: bool = True
) -> str:
    """The judge's transcript (`judge_turns`), one line per turn."""
    lines = [f"[round {r}] {who}: {x}" for r, who, x in judge_turns(turns, order, tag=tag)]
    return "\n".join(lines) or "(no arguments)"


def shown_block(template: str, context: str, shown: bool, spec: GraphSpec) -> str:
    """The privileged passage rendered with `template`, only for an audience allowed to see it,
    within `spec`'s prompt budget (`GraphSpec.shown_passage`)."""
    return template.format(context=spec.shown_passage(context)) if shown and context else ""
