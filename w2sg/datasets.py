"""Where rows come from and how a record becomes rows: `DatasetSpec`, the `dataset:` of every config.

A spec names a registry entry (`{name: boolq}`), a local file or folder (`{path: my.jsonl}`) or a
hub dataset (`{hub: org/name, config: ...}`), and says how to read its records: a `format` (or
`auto`), `columns:` renames, the multiple-choice `strategy`, recorded label columns. Every format
gives rows of (question, candidate answer, gold 0/1, question id, optional passage) as
`w2sg.data.Example`s; splits stay by question id. A registry entry is only a preset of these
fields (the user's fields override it), so a named set and one's own file go through one path.

Formats (the columns each reads, before `columns:` renames them):
- `sciq`: question, correct_answer, distractor1..N, passage from `support`;
- `choices_key`: question, choices {text: [...], label: [...]}, answerKey (ARC, OpenBookQA);
- `choices_index`: question, choices [...] (or a list of columns), integer answer (MMLU, QuALITY);
- `boolq`: question, passage, answer (bool) → a `yes` and a `no` row;
- `binarized`: question, answer, label 0/1 (rows already binarized, e.g. SciQ's train file);
- `binary`: text (+ text_pair, passage), label 0/1 → one row (question = text, answer = text_pair;
  records with one text are one question);
- `pairwise`: chosen, rejected (+ prompt; default their common prefix) → a row each, chosen gold 1.
Multiple choice binarizes by `strategy`: `one_distractor` (the correct choice and one seeded
wrong one) or `all_choices` (every choice a row).

Each row keeps where it came from (`Example.source_id`: the record's `id` column, else its row
in the file from 0; `Example.source`: the record's columns but the passage), for exports to join
labels back to the user's data. `split:` divides one file (or a source's train split) into
train and test by question, seeded (`FileSplit`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
from collections.abc import Callable, Collection, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from w2sg.config import Config
from w2sg.data import DATA_DIR_ENV, DataError, Example, Size, dedupe, make_id, resolve_sizes

Format = Literal["auto", "sciq", "choices_key", "choices_index", "boolq", "binarized", "binary", "pairwise"]
Record = dict[str, Any]
Row = tuple[int, Record]  # (row number in its file, the record)

#: The fields each format reads → the column they are read from unless `columns:` says otherwise;
#: required ones first, then optional (`?`).
FORMAT_FIELDS: dict[str, dict[str, str]] = {
    "sciq": {"question": "question", "correct_answer": "correct_answer", "passage?": "support"},
    "choices_key": {
        "question": "question",
        "choices": "choices",
        "answerKey": "answerKey",
        "passage?": "passage",
    },
    "choices_index": {
        "question": "question",
        "choices": "choices",
        "answer": "answer",
        "passage?": "passage",
    },
    "boolq": {"question": "question", "answer": "answer", "passage?": "passage"},
    "binarized": {"question": "question", "answer": "answer", "label": "label", "passage?": "passage"},
    "binary": {"text": "text", "label": "label", "text_pair?": "text_pair", "passage?": "passage"},
    "pairwise": {"chosen": "chosen", "rejected": "rejected", "prompt?": "prompt"},
}
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def sciq_dir() -> Path:
    """$W2SG_DATA_DIR, else the shared SciQ folder beside the checkout."""
    return Path(
        os.environ.get(DATA_DIR_ENV, Path(__file__).resolve().parents[2] / "shared" / "data" / "sciq")
    )


class FileSplit(Config):
    """`split: {test: 0.2, seed: 0}`: one file's questions divided into train and test. A
    question's rank is a hash of the seed and its id, so the split depends on the seed and the
    questions alone (not on row order), and a question stays where it is as the file grows
    unless it sits at the boundary."""

    test: Size = Field(0.2, description="test questions: a share (0.2, rounded down) or a count")
    seed: int = Field(0, description="which questions go to test (the experiment's `seed` does not move it)")

    @field_validator("test")
    @classmethod
    def _leaves_train(cls, v: Size) -> Size:
        if v == "rest" or (isinstance(v, float) and v == 1.0):
            raise ValueError(f"test is a share below 1 or a count, so that train keeps questions; got {v!r}")
        return v

    def divide(self, rows: Sequence[Example], where: str) -> dict[str, list[Example]]:
        """train and test, disjoint by question, each in the rows' order."""
        qids = sorted(
            {e.qid for e in rows}, key=lambda q: hashlib.sha256(f"{self.seed}|{q}".encode()).digest()
        )
        n = resolve_sizes({"test": self.test}, len(qids))["test"]
        if not 0 < n < len(qids):
            raise DataError(
                f"{where}: split test {self.test!r} of its {len(qids)} questions leaves "
                f"{'no test' if n < 1 else 'no train'} question; give a share (0.2) or a smaller count"
            )
        test = set(qids[:n])
        return {"train": [e for e in rows if e.qid not in test], "test": [e for e in rows if e.qid in test]}


class DatasetSpec(Config):
    name: str | None = Field(
        None, description="a registry entry (sciq, boolq, ...): defaults for every field below"
    )
    path: Path | None = Field(
        None,
        description="a file (.jsonl .json .csv .parquet), a `datasets.save_to_disk` folder, or a folder of "
        "one file per split (`files:` names them)",
    )
    hub: str | None = Field(None, description="a hub dataset id (only when online)")
    config: str | None = Field(None, description="the hub dataset's config")
    files: dict[str, str] = Field(
        default_factory=dict,
        description="split → file name inside `path` (default: <split>.<jsonl|json|csv|parquet>)",
    )
    hub_splits: dict[str, str] = Field(default_factory=dict, description="split → the hub's split name")
    format: Format = "auto"
    columns: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="a format's field → the data's column (`choices`: a list of columns is allowed)",
    )
    strategy: Literal["one_distractor", "all_choices"] = Field(
        "one_distractor",
        description="multiple choice → rows: the correct and one seeded wrong choice, or all",
    )
    label_columns: list[str] = Field(
        default_factory=list,
        description="recorded p(true) columns kept as label sources where a file has them",
    )
    qid_fields: list[str] = Field(
        default_factory=lambda: ["question"],
        description="what identifies a question (its rows always share a split): `question`, and `passage` "
        "where one question text is asked of many passages",
    )
    duplicates: Literal["error", "drop"] = Field(
        "error", description="rows with one id and different gold: an error, or dropped (counted in the log)"
    )
    split: FileSplit | None = Field(
        None,
        description="divide one file (a folder's or hub's `train` split) into train and test by question, "
        "seeded: {test: 0.2, seed: 0}",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        if self.name is not None and self.name not in PRESETS:
            raise ValueError(f"unknown dataset {self.name!r}; registered: {', '.join(PRESETS)}")
        full = self.resolved()
        if full.path is None and full.hub is None:
            raise ValueError(
                "give `name:` (a registry entry), `path:` (a file or folder) or `hub:` (a hub id)"
            )
        if "question" not in self.qid_fields or not set(self.qid_fields) <= {"question", "passage"}:
            raise ValueError(f"qid_fields: [question] or [passage, question], got {self.qid_fields}")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        # Unset, `split` is left out: configs from before it keep their run ids and label hashes.
        if isinstance(data, dict) and data.get("split", 0) is None:
            del data["split"]
        return data

    def resolved(self) -> DatasetSpec:
        """The registry entry's fields, overridden by those this spec sets."""
        if self.name is None:
            return self
        base = DatasetSpec.model_construct(**PRESETS[self.name]())
        return base.model_copy(update={k: getattr(self, k) for k in self.model_fields_set if k != "name"})

    @property
    def title(self) -> str:
        return self.name or (str(self.path) if self.path is not None else f"hub:{self.hub}")


DEFAULT = "sciq"


def dataset_field() -> Any:
    """The `dataset:` field every config declares (SciQ unless it says otherwise)."""
    return Field(
        default_factory=lambda: DatasetSpec(name=DEFAULT),
        description="a registry name (sciq, boolq, ...), or {path: ...} / {hub: ...} with format and columns",
    )


def load(dataset: str | DatasetSpec, split: str, *, seed: int = 0) -> list[Example]:
    """`load("sciq", "test")`: a split of a registered dataset (or of any spec)."""
    return load_split(
        dataset if isinstance(dataset, DatasetSpec) else DatasetSpec(name=dataset), split, seed=seed
    )


def load_split(spec: DatasetSpec, split: str, *, seed: int = 0) -> list[Example]:
    """One split's rows, validated (a bad record is a DataError naming file, row and column, with
    the columns it has) and deduplicated. With `split:`, train and test are the two parts of the
    source's (one file's) rows."""
    full = spec.resolved()
    if full.split is None:
        return _load_rows(spec, full, split, seed)
    if split not in ("train", "test"):
        raise DataError(f"{full.title}: with `split:`, the data has the splits train and test, not {split!r}")
    rows = _load_rows(spec, full, "train", seed)
    where = f"{full.title} (split: test {full.split.test}, seed {full.split.seed})"
    return full.split.divide(rows, where)[split]


def train_pool(
    train: Sequence[Example], taken: Collection[str], where: str, *, refuse_same: bool = True
) -> list[Example]:
    """The train split's rows (`train`, of the data `where`) whose question is not in `taken` (the
    questions of splits drawn from the test split: a few SciQ questions repeat across its files,
    and a question is in one split only). `refuse_same`: nothing left means train and test are the
    same questions (one file serves every split), a DataError saying how to divide it."""
    pool = [e for e in train if e.qid not in taken]
    if refuse_same and not pool:
        raise DataError(
            f"{where}: its train and test splits are the same questions (one file serves every split); "
            "give a folder with a train and a test file, `files: {train: ..., test: ...}`, or "
            "`split: {test: 0.2, seed: 0}` to divide the file by question"
        )
    return pool


def _load_rows(spec: DatasetSpec, full: DatasetSpec, split: str, seed: int) -> list[Example]:
    """`split` as the source has it (`full`: `spec` resolved)."""
    # A path the config gives must exist; a registry entry's default folder may be absent (its hub copy then).
    rows, where = _read(full, split, must_exist=spec.name is None or "path" in spec.model_fields_set)
    if not rows:
        raise DataError(f"{where}: no records")
    fmt = full.format if full.format != "auto" else detect(rows[0][1], full, where)
    parse = PARSERS[fmt]
    out: list[Example] = []
    labels_seen: set[str] = set()
    for index, (line, raw) in enumerate(rows):
        rec = Fields(raw, full, fmt, where, line, index)
        extra = rec.labels()  # a record's recorded labels, on each of its rows
        labels_seen |= set(extra)
        out += [e.model_copy(update={"labels": extra}) if extra else e for e in parse(rec, full, seed)]
    if labels_seen:  # a recorded label column is optional, but a file has it on every row or none
        gap = next((e for e in out if set(e.labels) != labels_seen), None)
        if gap is not None:
            missing = sorted(labels_seen - set(gap.labels))
            raise DataError(f"{where}: row for {gap.question[:40]!r} lacks label column(s) {missing}")
    if full.duplicates == "error":
        _no_contradictions(out, where)
    return dedupe(out, where)


def detect(record: Record, spec: DatasetSpec, where: str) -> str:
    """The format whose required fields a record has (after `columns:` renames)."""
    for fmt in ("pairwise", "sciq", "choices_key", "choices_index", "boolq", "binarized", "binary"):
        cols = [_column(spec, fmt, f) for f in FORMAT_FIELDS[fmt] if not f.endswith("?")]
        if not all(c in record for col in cols for c in (col if isinstance(col, list) else [col])):
            continue
        answer = record.get(str(_column(spec, fmt, "answer")))
        if fmt == "choices_index" and not _is_int(answer):
            continue
        if fmt == "boolq" and not (isinstance(answer, bool) or str(answer).lower() in ("true", "false")):
            continue
        return fmt
    raise DataError(
        f"{where}: no format fits a record with columns {sorted(record)}; name one with `format:` "
        f"({', '.join(FORMAT_FIELDS)}) and map columns with `columns:`"
    )


class Fields:
    """One record read through a format's field names, with errors that name file, row and column."""

    def __init__(self, raw: Record, spec: DatasetSpec, fmt: str, where: str, line: int, index: int):
        # line: where messages point (a JSONL or CSV line); index: the record's row, from 0.
        self.raw, self.spec, self.fmt, self.where, self.line, self.index = raw, spec, fmt, where, line, index

    def fail(self, message: str) -> DataError:
        return DataError(f"{self.where}:{self.line}: {message} (columns: {', '.join(sorted(self.raw))})")

    def col(self, field: str) -> Any:
        return _column(self.spec, self.fmt, field)

    def required(self, field: str) -> Any:
        col = self.col(field)
        if isinstance(col, list):
            return [self.get_column(c) for c in col]
        return self.get_column(col)

    def get_column(self, col: str) -> Any:
        if not isinstance(col, str) or col not in self.raw:
            raise self.fail(f"missing column {col!r}")
        return self.raw[col]

    def text(self, field: str, *, required: bool = True) -> str:
        col = self.col(field)
        if col not in self.raw or self.raw[col] is None:
            if required:
                raise self.fail(f"missing column {col!r}")
            return ""
        value = self.raw[col]
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(f"column {col!r} should be a non-empty string, got {value!r}")
        return value

    def gold(self, field: str) -> int:
        col = self.col(field)
        value = self.get_column(col)
        if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
            value = value.strip().lower() in ("1", "true")
        if isinstance(value, float) and value in (0.0, 1.0):
            value = int(value)
        if value not in (0, 1):
            raise self.fail(f"column {col!r} should be gold 0 or 1, got {value!r}")
        return int(value)

    def passage(self) -> str:
        return self.text("passage?", required=False) if "passage?" in FORMAT_FIELDS[self.fmt] else ""

    @cached_property
    def source_id(self) -> str | int:
        """The record's `id` column (`columns: {id: ...}` renames it), else its row from 0 (as
        pandas and `datasets` number rows; in a CSV, the first row under the header is 0)."""
        col = self.spec.columns.get("id", "id")
        value = self.raw.get(col) if isinstance(col, str) else None
        if value is None:
            if "id" in self.spec.columns:  # named in the config: it has to be there
                raise self.fail(f"missing id column {col!r} (named by `columns: {{id: ...}}`)")
            return self.index
        return value if isinstance(value, str | int) and not isinstance(value, bool) else str(value)

    @cached_property
    def source(self) -> Record:
        """The record's columns but the passage (the row's `support`: long, and joined back by id)."""
        passage = self.col("passage?") if "passage?" in FORMAT_FIELDS[self.fmt] else None
        return {k: v for k, v in self.raw.items() if k != passage}

    def qid_text(self, question: str) -> str:
        parts = {"question": question, "passage": self.passage()}
        return "\x1f".join(parts[k] for k in self.spec.qid_fields)

    def labels(self) -> dict[str, float]:
        out = {}
        for col in self.spec.label_columns:
            if col not in self.raw:
                continue
            try:
                p = float(self.raw[col])
            except (TypeError, ValueError):
                raise self.fail(f"column {col!r} should be a probability, got {self.raw[col]!r}") from None
            if not 0.0 <= p <= 1.0:
                raise self.fail(f"column {col!r} should be a probability in [0, 1], got {p}")
            out[col] = p
        return out


def _column(spec: DatasetSpec, fmt: str, field: str) -> str | list[str]:
    bare = field.rstrip("?")
    return spec.columns.get(bare, FORMAT_FIELDS[fmt].get(field, FORMAT_FIELDS[fmt].get(bare + "?", bare)))


def _is_int(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and v.strip().isdigit())


def _example(rec: Fields, question: str, answer: str, label: int) -> Example:
    qid, rid = make_id(rec.qid_text(question), answer)
    return Example(
        id=rid,
        qid=qid,
        question=question,
        answer=answer,
        label=label,
        support=rec.passage(),
        source_id=rec.source_id,
        source=rec.source,
    )


def _choose(
    rec: Fields, spec: DatasetSpec, seed: int, question: str, choices: list[str], correct: int
) -> list[Example]:
    """Multiple choice → rows by the spec's strategy; the wrong choice is seeded per question, so
    it does not depend on file order."""
    if len(choices) < 2 or any(not isinstance(c, str) or not c.strip() for c in choices):
        raise rec.fail(f"needs at least two non-empty choices, got {choices!r}")
    # A wrong choice that repeats the correct one is not wrong; `all_choices` keeps one row per text.
    right = choices[correct]
    key = right.strip().lower()
    wrong = [c for i, c in enumerate(choices) if i != correct and c.strip().lower() != key]
    if spec.strategy == "all_choices":
        seen: set[str] = set()
        wrong = [c for c in wrong if not (c.strip().lower() in seen or seen.add(c.strip().lower()))]
    if not wrong:
        raise rec.fail(f"every choice repeats the correct one ({right!r})")
    if spec.strategy == "one_distractor":
        wrong = [random.Random(f"{seed}|{question}").choice(wrong)]
    return [_example(rec, question, right, 1), *(_example(rec, question, w, 0) for w in wrong)]


def _sciq(rec: Fields, spec: DatasetSpec, seed: int) -> list[Example]:
    question, correct = rec.text("question"), rec.text("correct_answer")
    names = sorted((k for k in rec.raw if k.startswith("distractor")), key=lambda k: (len(k), k))
    if not names:
        raise rec.fail("no distractor columns (distractor1, distractor2, ...)")
    distractors = [str(rec.raw[k]) for k in names if rec.raw[k] is not None and str(rec.raw[k]).strip()]
    return _choose(rec, spec, seed, question, [correct, *distractors], 0)


def _choices_key(rec: Fields, spec: DatasetSpec, seed: int) -> list[Example]:
    question, choices, key = rec.text("question"), rec.required("choices"), rec.required("answerKey")
    choices = _maybe_json(choices)
    if (
        not isinstance(choices, dict)
        or not isinstance(choices.get("text"), list)
        or not isinstance(choices.get("label"), list)
    ):
        raise rec.fail(
            f"column {rec.col('choices')!r} should be {{text: [...], label: [...]}}, got {choices!r}"
        )
    texts, keys = choices["text"], [str(k) for k in choices["label"]]
    if str(key) not in keys:
        raise rec.fail(f"column {rec.col('answerKey')!r}: {key!r} is not among the choice labels {keys}")
    return _choose(rec, spec, seed, question, texts, keys.index(str(key)))


def _choices_index(rec: Fields, spec: DatasetSpec, seed: int) -> list[Example]:
    question, choices, answer = (
        rec.text("question"),
        _maybe_json(rec.required("choices")),
        rec.required("answer"),
    )
    if not isinstance(choices, list):
        raise rec.fail(f"column {rec.col('choices')!r} should be a list of choices, got {choices!r}")
    if not _is_int(answer) or not 0 <= int(answer) < len(choices):
        raise rec.fail(
            f"column {rec.col('answer')!r} should index the {len(choices)} choices, got {answer!r}"
        )
    return _choose(rec, spec, seed, question, choices, int(answer))


def _boolq(rec: Fields, spec: DatasetSpec, seed: int) -> list[Example]:
    question, gold = rec.text("question"), rec.gold("answer")
    return [_example(rec, question, "yes", gold), _example(rec, question, "no", 1 - gold)]


def _binarized(rec: Fields, spec: DatasetSpec, seed: int) -> list[Example]:
    return [_example(rec, rec.text("question"), rec.text("answer"), rec.gold("label"))]


def _binary(rec: Fields, spec: DatasetSpec, seed: int) -> list[Example]:
    # The text is the question: records sharing it (one text, several pairs) share a split.
    return [_example(rec, rec.text("text"), rec.text("text_pair?", required=False), rec.gold("label"))]


def _pairwise(rec: Fields, spec: DatasetSpec, seed: int) -> list[Example]:
    chosen, rejected = rec.text("chosen").strip(), rec.text("rejected").strip()
    prompt = rec.text("prompt?", required=False).strip()
    if prompt:
        if not (chosen.startswith(prompt) and rejected.startswith(prompt)):
            raise rec.fail("`prompt` should begin both chosen and rejected")
        a, b = chosen.removeprefix(prompt), rejected.removeprefix(prompt)
    else:  # the shared dialogue, cut back to a word boundary; the rest is each side's answer
        n = next((i for i, (x, y) in enumerate(zip(chosen, rejected, strict=False)) if x != y), len(chosen))
        while n and not chosen[n - 1].isspace():
            n -= 1
        prompt, a, b = chosen[:n].strip(), chosen[n:], rejected[n:]
    if not prompt:
        raise rec.fail("chosen and rejected share no prompt; give a `prompt` column")
    if not a.strip() or not b.strip() or a.strip() == b.strip():
        raise rec.fail("chosen and rejected should differ after their shared prompt")
    return [_example(rec, prompt, a.strip(), 1), _example(rec, prompt, b.strip(), 0)]


PARSERS: dict[str, Callable[[Fields, DatasetSpec, int], list[Example]]] = {
    "sciq": _sciq,
    "choices_key": _choices_key,
    "choices_index": _choices_index,
    "boolq": _boolq,
    "binarized": _binarized,
    "binary": _binary,
    "pairwise": _pairwise,
}


def _maybe_json(value: Any) -> Any:
    """A CSV cell holding a list or mapping as JSON text."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _no_contradictions(rows: Sequence[Example], where: str) -> None:
    gold: dict[str, int] = {}
    for e in rows:
        if gold.setdefault(e.id, e.label) != e.label:
            raise DataError(
                f"{where}: question {e.question[:60]!r} with answer {e.answer[:40]!r} appears with gold 0 "
                "and 1; fix the file or set `duplicates: drop`"
            )


# -- reading ------------------------------------------------------------------------------------


def _read(spec: DatasetSpec, split: str, *, must_exist: bool) -> tuple[list[Row], str]:
    """The split's records and where they came from (for messages)."""
    local = spec.path
    if local is not None and not local.exists() and spec.hub is not None and not must_exist:
        local = None  # the entry's default folder is not on this machine: its hub copy instead
    if local is not None:
        return _read_local(local, spec, split)
    return _read_hub(spec, split)


def _read_local(path: Path, spec: DatasetSpec, split: str) -> tuple[list[Row], str]:
    if not path.exists():
        raise DataError(f"{path}: no such data file or folder")
    if path.is_file():
        return _read_file(path), str(path)
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        return _read_saved(path, split, spec.hub_splits.get(split)), f"{path}[{split}]"
    name = spec.files.get(split)
    candidates = [path / name] if name else [path / f"{split}{s}" for s in SUFFIXES]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        present = sorted(p.name for p in path.iterdir()) or ["nothing"]
        raise DataError(
            f"{path}: no file for split {split!r} (looked for {', '.join(c.name for c in candidates)}; "
            f"the folder has {', '.join(present[:12])}); name it with `files: {{{split}: ...}}`"
        )
    return _read_file(found), str(found)


def _read_file(path: Path) -> list[Row]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl(path)
    if suffix == ".json":
        try:
            data = json.loads(_text(path))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
            data = next(iter(data.values()))  # {"data": [...]}
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a list of records, got {type(data).__name__}")
        return _records(path, enumerate(data, start=1))
    if suffix == ".csv":
        return _csv(path)
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq  # an optional dependency, needed only for parquet files
        except ImportError:
            raise DataError(f"{path}: reading parquet needs the `pyarrow` package") from None

        return _records(path, enumerate(pq.read_table(path).to_pylist(), start=1))
    raise DataError(f"{path}: unknown file type {suffix!r}; expected one of {', '.join(SUFFIXES)}")


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of a column name
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}); re-save it as UTF-8") from None


def _csv(path: Path) -> list[Row]:
    """Rows numbered as the file's lines (the header is line 1)."""
    import io

    reader = csv.DictReader(io.StringIO(_text(path), newline=""), restkey="\x00extra")
    out = []
    try:
        for i, row in enumerate(reader, start=2):
            if "\x00extra" in row:
                n, m = len(reader.fieldnames or []) + len(row["\x00extra"]), len(reader.fieldnames or [])
                raise DataError(f"{path}:{i}: {n} cells under a header of {m} (a comma in an unquoted cell?)")
            out.append((i, dict(row)))
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV ({e})") from None
    return _records(path, out)


def _jsonl(path: Path) -> list[Row]:
    rows = []
    for i, line in enumerate(_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((i, json.loads(line)))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
    return _records(path, rows)


def _records(path: Path, rows: Iterable[tuple[int, Any]]) -> list[Row]:
    out = []
    for i, row in rows:
        if not isinstance(row, dict):
            raise DataError(f"{path}:{i}: expected a record (a mapping of columns), got {type(row).__name__}")
        out.append((i, row))
    return out


def _read_saved(path: Path, split: str, hub_split: str | None = None) -> list[Row]:
    try:
        import datasets
    except ImportError:
        raise DataError(f"{path}: a save_to_disk folder needs the `datasets` package") from None
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        name = split if split in ds else hub_split  # a local copy of the hub's splits, by the hub's names
        if name not in ds:
            raise DataError(f"{path}: no split {split!r}; it has {', '.join(ds)}")
        ds = ds[name]
    return list(enumerate(ds, start=1))


def _read_hub(spec: DatasetSpec, split: str) -> tuple[list[Row], str]:
    hub_split = spec.hub_splits.get(split, split)
    where = f"hub:{spec.hub}{'/' + spec.config if spec.config else ''}[{hub_split}]"
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        raise DataError(
            f"{where}: HF_HUB_OFFLINE is set, so the hub cannot be read; give `path:` to local files in the "
            "hub's schema (or a save_to_disk folder)"
        )
    try:
        import datasets
    except ImportError:
        raise DataError(f"{where}: reading the hub needs the `datasets` package") from None
    try:
        ds = datasets.load_dataset(spec.hub, spec.config, split=hub_split)
    except (ConnectionError, OSError, ValueError) as e:
        raise DataError(f"{where}: could not be loaded ({type(e).__name__}: {e})") from None
    return list(enumerate(ds, start=1)), where


# -- the registry: presets of the fields above, with the hub's schema ---------------------------

WEAK_LABEL_COLUMNS = ["weak_p_true", "weak_p_true_with_support"]

#: name → its preset fields (a function: the SciQ folder is read from the environment when used).
PRESETS: dict[str, Callable[[], dict[str, Any]]] = {}


def register(name: str, preset: Callable[[], dict[str, Any]] | None = None, **fields: Any) -> None:
    """A named dataset: `{name: <name>}` in a config reads these fields (any the config sets win)."""
    PRESETS[name] = preset or (lambda: dict(fields))


# SciQ: the shared folder's files (train binarized, with the recorded Qwen-1.8B weak labels; test
# in the hub's schema), else the hub. Two train question-answer pairs appear with both golds there.
register(
    "sciq",
    lambda: {
        "path": sciq_dir(),
        "files": {"train": "train_weak_labels.jsonl", "test": "test.jsonl"},
        "hub": "allenai/sciq",
        "label_columns": WEAK_LABEL_COLUMNS,
        "duplicates": "drop",
    },
)
register("boolq", hub="google/boolq", format="boolq", hub_splits={"test": "validation"})
register(
    "cosmos_qa",
    hub="allenai/cosmos_qa",
    format="choices_index",
    columns={
        "choices": ["answer0", "answer1", "answer2", "answer3"],
        "answer": "label",
        "passage": "context",
    },
    hub_splits={"test": "validation"},
    qid_fields=["passage", "question"],
)
register("anthropic_hh", hub="Anthropic/hh-rlhf", format="pairwise")
register(
    "amazon_polarity",
    hub="amazon_polarity",
    format="binary",
    columns={"text": "content", "text_pair": "title"},
)
register("arc_easy", hub="allenai/ai2_arc", config="ARC-Easy", format="choices_key")
register("arc_challenge", hub="allenai/ai2_arc", config="ARC-Challenge", format="choices_key")
register(
    "openbookqa",
    hub="allenai/openbookqa",
    config="additional",
    format="choices_key",
    columns={"question": "question_stem", "passage": "fact1"},
)
register(
    "mmlu", hub="cais/mmlu", config="all", format="choices_index", hub_splits={"train": "auxiliary_train"}
)
register(
    "quality",
    hub="emozilla/quality",
    format="choices_index",
    columns={"choices": "options", "passage": "article"},
    hub_splits={"test": "validation"},
    qid_fields=["passage", "question"],
)


def parse_spec(text: str) -> DatasetSpec:
    """A command-line `--dataset`: a registry name, a path, or a YAML mapping of spec fields."""
    import yaml

    if text in PRESETS:
        return DatasetSpec(name=text)
    if Path(text).exists():
        return DatasetSpec(path=Path(text))
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(
            f"--dataset {text!r}: neither a registered dataset ({', '.join(PRESETS)}), an existing path, "
            "nor a mapping such as '{path: my.csv, format: binary}'"
        )
    return DatasetSpec.model_validate(data)
