"""Datasets as lists of `Example`s. SciQ binarized: each question gives two rows, its correct answer
(label 1) and one seeded distractor (label 0). Splits are by question, so no question sits in two."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

DATA_DIR_ENV = "W2SG_DATA_DIR"
SCIQ_TRAIN = "train_weak_labels.jsonl"
SCIQ_TEST = "test.jsonl"


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

    def text_pair(self) -> tuple[str, str]:
        return self.question, self.answer


def _hash(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:12]


def make_example(question: str, answer: str, label: int, **kw: object) -> Example:
    qid = _hash(question.strip().lower())
    return Example(id=f"{qid}-{_hash(answer)}", qid=qid, question=question, answer=answer, label=label, **kw)


def read_jsonl(path: Path) -> list[tuple[int, dict[str, object]]]:
    """(line number, row) pairs; a bad line is a DataError naming file and line."""
    if not path.exists():
        raise DataError(f"{path}: no such data file (set {DATA_DIR_ENV} or `data_dir` to the SciQ folder)")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{i}: expected a JSON object, got {type(row).__name__}")
        rows.append((i, row))
    return rows


def _field(path: Path, line: int, row: dict[str, object], name: str, kind: type) -> object:
    if name not in row:
        raise DataError(f"{path}:{line}: missing field {name!r}")
    value = row[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is str and not str(value).strip()):
        raise DataError(f"{path}:{line}: field {name!r} should be a non-empty {kind.__name__}, got {value!r}")
    return value


def load_sciq_binarized(path: Path, label_columns: Sequence[str] = ()) -> list[Example]:
    """Rows already binarized: question, answer, label, plus optional label-source columns."""
    out = []
    for line, row in read_jsonl(path):
        question = str(_field(path, line, row, "question", str))
        answer = str(_field(path, line, row, "answer", str))
        label = _field(path, line, row, "label", int)
        if label not in (0, 1):
            raise DataError(f"{path}:{line}: field 'label' should be 0 or 1, got {label!r}")
        extra = {}
        for col in label_columns:
            p = float(_field(path, line, row, col, float))  # type: ignore[arg-type]
            if not 0.0 <= p <= 1.0:
                raise DataError(f"{path}:{line}: field {col!r} should be a probability in [0, 1], got {p}")
            extra[col] = p
        out.append(make_example(question, answer, int(label), labels=extra))  # type: ignore[call-overload]
    return out


def binarize_sciq(rows: Sequence[tuple[int, dict[str, object]]], path: Path, seed: int) -> list[Example]:
    """HF schema (question, correct_answer, distractor1..3, support) → two rows per question."""
    out = []
    for line, row in rows:
        q = str(_field(path, line, row, "question", str))
        correct = str(_field(path, line, row, "correct_answer", str))
        distractors = [str(_field(path, line, row, f"distractor{k}", str)) for k in (1, 2, 3)]
        support = row.get("support") or ""
        # Seeded per question, so the distractor does not depend on file order.
        wrong = random.Random(f"{seed}|{q}").choice(distractors)
        out.append(make_example(q, correct, 1, support=str(support)))
        out.append(make_example(q, wrong, 0, support=str(support)))
    return out


def sciq_dir(data_dir: str | Path | None = None) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    if DATA_DIR_ENV in os.environ:
        return Path(os.environ[DATA_DIR_ENV])
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "sciq"


WEAK_LABEL_COLUMNS = ("weak_p_true", "weak_p_true_with_support")


def load_sciq(split: str, data_dir: str | Path | None = None, *, seed: int = 0) -> list[Example]:
    """`train`: the 10,000 binarized rows with the recorded Qwen-1.8B weak labels as label sources.
    `test`: the 500 test questions, binarized with a seeded distractor. From the local folder when
    it exists, else from the HF hub (`allenai/sciq`, needs the `datasets` package and network)."""
    folder = sciq_dir(data_dir)
    if split == "train" and (folder / SCIQ_TRAIN).exists():
        return load_sciq_binarized(folder / SCIQ_TRAIN, WEAK_LABEL_COLUMNS)
    if split == "test" and (folder / SCIQ_TEST).exists():
        return binarize_sciq(read_jsonl(folder / SCIQ_TEST), folder / SCIQ_TEST, seed)
    if split not in ("train", "test", "validation"):
        raise DataError(f"unknown SciQ split {split!r}; expected train, validation or test")
    return _sciq_from_hub(split, seed, folder)


def _sciq_from_hub(split: str, seed: int, folder: Path) -> list[Example]:
    try:
        import datasets  # optional: only for users with network access
    except ImportError:
        raise DataError(
            f"{folder}: no SciQ files there, and the `datasets` package is not installed "
            "to download allenai/sciq"
        ) from None
    try:
        ds = datasets.load_dataset("allenai/sciq", split=split)
    except (ConnectionError, OSError, ValueError) as e:  # offline, no such split, hub errors
        raise DataError(
            f"{folder}: no SciQ files there, and allenai/sciq could not be loaded from the hub "
            f"({type(e).__name__}: {e}); point W2SG_DATA_DIR or data_dir at a folder with the files"
        ) from None
    return binarize_sciq(list(enumerate(ds, start=1)), Path(f"hf://allenai/sciq/{split}"), seed)


DATASETS: dict[str, Callable[..., list[Example]]] = {"sciq": load_sciq}


def load_dataset(
    name: str, split: str, data_dir: str | Path | None = None, *, seed: int = 0
) -> list[Example]:
    """A registered dataset's split, with duplicate rows resolved (see `dedupe`)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; registered: {', '.join(DATASETS)}")
    return dedupe(DATASETS[name](split, data_dir, seed=seed), f"{name}/{split}")


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


def fingerprint(splits: dict[str, Sequence[Example]]) -> str:
    """Content hash of the rows a run uses, split by split: every field of every row (text,
    passage, gold, recorded labels). Run folders are named by it with the config, so the same
    config over other data never reuses a folder."""
    h = hashlib.sha256()
    for name in sorted(splits):
        h.update(f"\x1e{name}\x1e".encode())
        for e in sorted(splits[name], key=lambda e: e.id):
            h.update(e.model_dump_json().encode())
    return h.hexdigest()[:16]


def data_info(splits: dict[str, Sequence[Example]], fp: str) -> dict[str, object]:
    """What a run folder's config.json records of its data (`fp`: the splits' fingerprint, which
    the caller has already computed for the run id)."""
    return {"fingerprint": fp, "rows": {k: len(v) for k, v in splits.items()}}


def split_by_question(
    examples: Sequence[Example], sizes: dict[str, int], *, seed: int
) -> dict[str, list[Example]]:
    """Disjoint splits of `sizes[name]` questions each (two rows per question on SciQ), seeded."""
    qids = sorted({e.qid for e in examples})
    need = sum(sizes.values())
    if need > len(qids):
        raise DataError(f"asked for {need} questions across splits {sizes}, but the data has {len(qids)}")
    random.Random(seed).shuffle(qids)
    owner: dict[str, str] = {}
    start = 0
    for name, n in sizes.items():
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
