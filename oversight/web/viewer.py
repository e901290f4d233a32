"""The transcript viewer's data: every label of a store as a flat row, filters, per-protocol
accuracy, and a transcript as a judge reads it (debaters as A and B, quotes marked)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from graphs.render import judge_turns
from graphs.types import Turn
from oversight.labelling.store import LabelStore

TAGGED = re.compile(r"<(v|u)_quote>(.*?)</\1_quote>", re.S)


def store_path(source: Path) -> Path:
    """A label store, or a `w2sg run` folder (its labels.sqlite). Given on the command line only."""
    path = source / "labels.sqlite" if source.is_dir() else source
    if not path.is_file():
        raise FileNotFoundError(f"{source}: neither a label store nor a run folder with labels.sqlite")
    return path


def segments(text: str) -> list[tuple[str, str]]:
    """("text" | "verified" | "unverified", piece): a judge's text with its quote marks split
    out, so the page marks them and escapes every piece (nothing here is HTML)."""
    out, at = [], 0
    for m in TAGGED.finditer(text):
        out.append(("text", text[at : m.start()]))
        out.append(("verified" if m.group(1) == "v" else "unverified", m.group(2)))
        at = m.end()
    out.append(("text", text[at:]))
    return [(k, x) for k, x in out if x]


def shown_turns(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Turns as a judge saw them (`graphs.render.judge_turns`), each with its text's segments."""
    parsed = [Turn.model_validate(t) for t in turns]
    return [
        {"round": r, "speaker": who, "segments": segments(x)} for r, who, x in judge_turns(parsed, tag=True)
    ]


class Row(BaseModel):
    n: int
    example_id: str
    protocol: str
    config_hash: str
    status: str
    p_true: float | None
    gold: float | None
    correct: bool | None
    judge: str
    question: str
    answer: str
    text: str  # lower-cased question, answer, transcript and explanation: what search reads


def load(path: Path) -> tuple[list[Row], list[dict[str, Any]]]:
    """Every label of the store as a row, and the records (by `Row.n`)."""
    store = LabelStore(path)
    try:
        keys = store.db.execute(
            "SELECT DISTINCT protocol, config_hash FROM labels ORDER BY protocol"
        ).fetchall()
        labels = [r for p, h in keys for r in store.rows(p, h)]
    finally:
        store.close()
    rows, records = [], []
    for n, r in enumerate(labels):
        rec = r.record
        gold = rec.get("gold")
        correct = None if gold is None or r.p_true is None else (r.p_true > 0.5) == (gold > 0.5)
        said = " ".join(t.get("text", "") for t in rec.get("transcript", []))
        why = rec.get("human", {}).get("explanation", "")
        rows.append(
            Row(
                n=n,
                example_id=r.example_id,
                protocol=r.protocol,
                config_hash=r.config_hash,
                status=r.status,
                p_true=r.p_true,
                gold=gold,
                correct=correct,
                judge=rec.get("verdict", {}).get("judge", ""),
                question=rec.get("question", ""),
                answer=rec.get("answer", ""),
                text=f"{rec.get('question', '')} {rec.get('answer', '')} {said} {why}".lower(),
            )
        )
        records.append({**rec, "status": r.status, "error": r.error, "p_true": r.p_true})
    return rows, records


class Filters(BaseModel):
    protocol: str = ""
    status: str = ""
    verdict: str = ""  # correct | incorrect
    pmin: float | None = None
    pmax: float | None = None
    q: str = ""


def select(rows: list[Row], f: Filters) -> list[Row]:
    out = []
    for r in rows:
        if (f.protocol and r.protocol != f.protocol) or (f.status and r.status != f.status):
            continue
        if f.verdict and r.correct is not (f.verdict == "correct"):
            continue
        if (f.pmin is not None or f.pmax is not None) and r.p_true is None:
            continue
        if f.pmin is not None and r.p_true is not None and r.p_true < f.pmin:
            continue
        if f.pmax is not None and r.p_true is not None and r.p_true > f.pmax:
            continue
        if f.q and f.q.lower() not in r.text:
            continue
        out.append(r)
    return out


def summary(rows: list[Row]) -> list[dict[str, Any]]:
    """Per protocol: rows, failed, verdicts scored against gold and their accuracy."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.protocol, []).append(r)
    out = []
    for name, mine in sorted(groups.items()):
        scored = [r for r in mine if r.correct is not None]
        acc = sum(bool(r.correct) for r in scored) / len(scored) if scored else None
        failed = sum(r.status == "failed" for r in mine)
        out.append(
            {"protocol": name, "rows": len(mine), "failed": failed, "scored": len(scored), "accuracy": acc}
        )
    return out
