"""Rows as `Example`s (question, candidate answer, gold, question id, passage), and what every run
does with them: resolve repeats, fingerprint, split by question (no question sits in two splits),
read label sources. Where rows come from is `w2sg.datasets`."""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

DATA_DIR_ENV = "W2SG_DATA_DIR"


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file and line."""


class Example(BaseModel):
    """One (question, candidate answer) row. `labels` holds extra label sources by name, each a
    p(true) in [0, 1] (e.g. recorded weak labels, or oversight verdicts added later)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    qid: str = Field(description="question id: rows with the same qid always share a split")
    question: str
    answer: str
    label: int = Field(ge=0, le=1, description="gold: 1 if `answer` is correct")
    support: str = ""
    labels: dict[str, float] = Field(default_factory=dict)
    source_id: str | int | None = Field(
        None,
        description="the record it came from: the file's `id` column, else its row (from 0); None when "
        "made in code",
    )
    source: dict[str, Any] = Field(
        default_factory=dict, description="the record's columns, but the passage (exported with labels)"
    )

    def text_pair(self) -> tuple[str, str]:
        return self.question, self.answer


def _hash(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:12]


def make_id(question: str, answer: str) -> tuple[str, str]:
    """(question id, row id): the question's text (case and outer spaces aside) names the question;
    the answer's text, the row within it."""
    qid = _hash(question.strip().lower())
    return qid, f"{qid}-{_hash(answer)}"


def make_example(question: str, answer: str, label: int, **kw: object) -> Example:
    qid, rid = make_id(question, answer)
    return Example(id=rid, qid=qid, question=question, answer=answer, label=label, **kw)


def dedupe(examples: Sequence[Example], where: str = "data") -> list[Example]:
    """One row per id (question and answer). Repeats that agree on gold are merged into the first
    (SciQ's train file repeats 18 question-answer pairs; their recorded weak labels may differ, the
    first is kept); ids whose repeats contradict each other on gold are dropped entirely, since no
    label for them can be trusted. Counts are logged."""
    by_id: dict[str, list[Example]] = {}
    for e in examples:
        by_id.setdefault(e.id, []).append(e)
    if len(by_id) == len(examples):
        return list(examples)
    bad = {k for k, v in by_id.items() if len({e.label for e in v}) > 1}
    merged = sum(len(v) - 1 for k, v in by_id.items() if k not in bad)
    log.info(
        "%s: %d repeated rows merged into their first occurrence; %d ids with contradictory gold "
        "dropped (%d rows)",
        where,
        merged,
        len(bad),
        sum(len(by_id[k]) for k in bad),
    )
    return [v[0] for k, v in by_id.items() if k not in bad]


#: Where a row came from changes no result: left out of fingerprints (run ids and label config
#: hashes stay as they were before rows carried it).
ORIGIN = frozenset({"source_id", "source"})


def fingerprint(splits: dict[str, Sequence[Example]]) -> str:
    """Content hash of the rows a run uses, split by split: every field of every row (text,
    passage, gold, recorded labels) but its `ORIGIN`. Run folders are named by it with the config,
    so the same config over other data never reuses a folder."""
    h = hashlib.sha256()
    for name in sorted(splits):
        h.update(f"\x1e{name}\x1e".encode())
        for e in sorted(splits[name], key=lambda e: e.id):
            h.update(e.model_dump_json(exclude=ORIGIN).encode())
    return h.hexdigest()[:16]


def data_info(splits: dict[str, Sequence[Example]], fp: str) -> dict[str, object]:
    """What a run folder's config.json records of its data (`fp`: the splits' fingerprint, which
    the caller has already computed for the run id)."""
    return {"fingerprint": fp, "rows": {k: len(v) for k, v in splits.items()}}


def _check_size(v: int | float | str) -> int | float | str:
    if isinstance(v, bool) or (isinstance(v, int) and v < 1):
        raise ValueError(f"a count of questions is at least 1, got {v!r}")
    if isinstance(v, float) and not 0.0 < v <= 1.0:
        raise ValueError(f"a share of the questions is in (0, 1], got {v!r}")
    return v


#: A split's size: a count of questions, a share of them (0.25), or `rest` (what the others leave).
Size = Annotated[int | float | Literal["rest"], AfterValidator(_check_size)]


def resolve_sizes(sizes: dict[str, Size], n: int) -> dict[str, int]:
    """Counts of questions from `sizes` over `n`: shares round down, one split may be `rest`."""
    rest = [k for k, v in sizes.items() if v == "rest"]
    if len(rest) > 1:
        raise DataError(f"only one split can be `rest`, got {rest}")
    out = {k: (int(v * n) if isinstance(v, float) else v) for k, v in sizes.items() if v != "rest"}
    if rest:
        out[rest[0]] = n - sum(out.values())  # type: ignore[arg-type]
    return {k: out[k] for k in sizes}  # type: ignore[misc]


def split_by_question(
    examples: Sequence[Example],
    sizes: dict[str, Size],
    *,
    seed: int,
    what: str = "questions",
    remedy: str = "",
) -> dict[str, list[Example]]:
    """Disjoint splits of `sizes[name]` questions each (a count, a share, or `rest`), seeded.
    `what` says which questions `examples` are, for the message when there are too few (e.g.
    "questions with a passage in sciq test"); `remedy`, another way out, is added to it."""
    qids = sorted({e.qid for e in examples})
    counts = resolve_sizes(sizes, len(qids))
    need = sum(counts.values())
    if need > len(qids) or any(v < 1 for v in counts.values()):
        asked = ", ".join(
            f"{k}: {v}" + (f" (= {counts[k]})" if v != counts[k] else "") for k, v in sizes.items()
        )
        # Smaller sizes help only where every split can have a question.
        fixes = ["give smaller counts, shares (0.2) or `rest`"] if len(qids) >= len(sizes) else []
        fixes += [remedy] if remedy else []
        fix = "; or ".join(fixes) or f"no sizes fit: each of the {len(sizes)} splits needs a question"
        raise DataError(
            f"asked for {need} questions across splits ({asked}), but there are {len(qids)} {what}; {fix}"
        )
    random.Random(seed).shuffle(qids)
    owner: dict[str, str] = {}
    start = 0
    for name, n in counts.items():
        for q in qids[start : start + n]:
            owner[q] = name
        start += n
    out: dict[str, list[Example]] = {name: [] for name in sizes}
    for e in examples:
        if e.qid in owner:
            out[owner[e.qid]].append(e)
    return out


def with_labels(examples: Sequence[Example], name: str, probs: Sequence[float]) -> list[Example]:
    """Attach a label source (p(true) per row) under `name`, e.g. a weak teacher's predictions."""
    if len(probs) != len(examples):
        raise ValueError(f"label source {name!r} has {len(probs)} values for {len(examples)} examples")
    return [
        e.model_copy(update={"labels": {**e.labels, name: float(p)}})
        for e, p in zip(examples, probs, strict=True)
    ]


def label_source(examples: Sequence[Example], name: str) -> list[float]:
    """p(true) per row from a label source; `gold` is the gold label itself."""
    if name == "gold":
        return [float(e.label) for e in examples]
    missing = next((e for e in examples if name not in e.labels), None)
    if missing is not None:
        have = [*sorted(missing.labels), "gold"]
        raise DataError(f"example {missing.id} has no label source {name!r}; it has {have}")
    return [e.labels[name] for e in examples]
