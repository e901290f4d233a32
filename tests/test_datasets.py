"""The dataset layer: every format from a small fixture file in its hub's schema (jsonl, json, csv,
parquet, a save_to_disk folder), registry presets over local files, sizes as counts, shares and
`rest`, every bad-data case, and `w2sg train` / `label` / `run` on data that is not SciQ."""

from __future__ import annotations

import csv
import json
import random
import re
import sqlite3
from pathlib import Path

import pytest
import yaml
from cli import w2sg
from pydantic import ValidationError

from agents import ConfigError, load_config
from w2sg.data import DataError, Example, split_by_question
from w2sg.datasets import PRESETS, DatasetSpec, load_split, parse_spec

COUNTRIES = [f"Country{i}" for i in range(200)]
CITIES = [f"City{i}" for i in range(200)]


def mc_records(n: int, offset: int = 0, *, passage: bool = True) -> list[dict]:
    """ARC-schema questions (choices {text, label} + answerKey) whose passage states the answer."""
    out = []
    for i in range(offset, offset + n):
        rng = random.Random(i)
        right = CITIES[i]
        wrong = rng.sample([c for c in CITIES if c != right], 3)
        texts = [right, *wrong]
        rng.shuffle(texts)
        rec = {
            "id": f"q{i}",
            "question": f"What is the capital of {COUNTRIES[i]}?",
            "choices": {"text": texts, "label": ["A", "B", "C", "D"]},
            "answerKey": "ABCD"[texts.index(right)],
        }
        if passage:
            rec["passage"] = (
                f"{COUNTRIES[i]} is a country with a long coast. The capital of {COUNTRIES[i]} is {right}. "
                f"Its largest river flows past {wrong[0]} to the sea."
            )
        out.append(rec)
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def rows_of(spec: dict, split: str = "train", seed: int = 0) -> list[Example]:
    return load_split(DatasetSpec.model_validate(spec), split, seed=seed)


# -- formats -------------------------------------------------------------------------------------


def test_choices_key_one_distractor_and_all_choices(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "arc.jsonl", mc_records(10))
    one = rows_of({"path": str(path)})
    assert len(one) == 20 and all(sum(e.label for e in one if e.qid == q) == 1 for q in {e.qid for e in one})
    assert all(e.support and "capital" in e.support for e in one)  # the passage travels with every row
    right = {e.qid: e.answer for e in one if e.label}
    assert all(r["choices"]["text"]["ABCD".index(r["answerKey"])] in right.values() for r in mc_records(10))
    again = rows_of({"path": str(path)}, seed=0)
    other = rows_of({"path": str(path)}, seed=5)
    assert [e.answer for e in again] == [e.answer for e in one] != [e.answer for e in other]  # seeded
    every = rows_of({"path": str(path), "strategy": "all_choices"})
    assert len(every) == 40 and sum(e.label for e in every) == 10
    # Splits stay by question: all four rows of a question land together.
    sp = split_by_question(every, {"a": 4, "b": "rest"}, seed=0)
    assert len({e.qid for e in sp["a"]}) == 4 and len(sp["a"]) == 16 and len(sp["b"]) == 24


def test_choices_index_parquet_and_a_list_of_choice_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    mmlu = [{"question": f"Q{i}?", "choices": ["w", "x", "y", "z"], "answer": i % 4} for i in range(6)]
    pq.write_table(pa.Table.from_pylist(mmlu), tmp_path / "train.parquet")
    got = rows_of({"path": str(tmp_path)})  # a folder: <split>.<ext>
    assert [e.answer for e in got if e.label] == ["w", "x", "y", "z", "w", "x"]
    # cosmos_qa's schema: numbered answer columns, `label` the index, `context` the passage.
    cosmos = [
        {
            "context": f"ctx {i}",
            "question": "Why?",
            "answer0": "a",
            "answer1": "b",
            "answer2": "c",
            "answer3": "d",
            "label": 2,
        }
        for i in range(3)
    ]
    write_jsonl(tmp_path / "cosmos" / "train.jsonl", cosmos)
    got = rows_of({"name": "cosmos_qa", "path": str(tmp_path / "cosmos")})
    assert {e.answer for e in got if e.label} == {"c"} and {e.support for e in got} == {
        "ctx 0",
        "ctx 1",
        "ctx 2",
    }
    # One question text over three passages is three questions (qid_fields: passage, question).
    assert len({e.qid for e in got}) == 3


def test_boolq_json_binary_csv_and_pairwise(tmp_path: Path) -> None:
    boolq = [{"question": "is the sky blue", "answer": True, "passage": "The sky is blue."}]
    (tmp_path / "boolq.json").write_text(json.dumps(boolq))
    got = rows_of({"path": str(tmp_path / "boolq.json")})
    assert [(e.answer, e.label) for e in got] == [("yes", 1), ("no", 0)] and got[
        0
    ].support == "The sky is blue."
    # amazon_polarity's schema as a CSV (every cell a string), read through its registry preset.
    reviews = [
        {"title": "Great", "content": "Loved it.", "label": "1"},
        {"title": "Bad", "content": "Broke.", "label": "0"},
    ]
    write_csv(tmp_path / "amazon" / "test.csv", reviews)
    got = rows_of({"name": "amazon_polarity", "path": str(tmp_path / "amazon")}, "test")
    assert [(e.question, e.answer, e.label) for e in got] == [("Loved it.", "Great", 1), ("Broke.", "Bad", 0)]
    assert got[0].qid != got[1].qid  # each text is its own question
    hh = [
        {
            "chosen": "\n\nHuman: Hi?\n\nAssistant: Hello! How can I help?",
            "rejected": "\n\nHuman: Hi?\n\nAssistant: Go away.",
        }
    ]
    write_jsonl(tmp_path / "hh" / "train.jsonl", hh)
    got = rows_of({"name": "anthropic_hh", "path": str(tmp_path / "hh")})
    assert got[0].question == got[1].question == "Human: Hi?\n\nAssistant:"
    assert [(e.answer, e.label) for e in got] == [("Hello! How can I help?", 1), ("Go away.", 0)]


def test_a_save_to_disk_folder_and_column_renames(tmp_path: Path) -> None:
    import datasets

    obqa = [
        {
            "question_stem": f"Stem {i}?",
            "choices": {"text": ["p", "q"], "label": ["A", "B"]},
            "answerKey": "B",
            "fact1": f"fact {i}",
        }
        for i in range(4)
    ]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(obqa)}).save_to_disk(str(tmp_path / "obqa"))
    got = rows_of({"name": "openbookqa", "path": str(tmp_path / "obqa")})
    assert (
        {e.answer for e in got if e.label} == {"q"}
        and got[0].question == "Stem 0?"
        and got[0].support == "fact 0"
    )
    with pytest.raises(DataError, match=r"obqa: no split 'test'; it has train"):
        rows_of({"name": "openbookqa", "path": str(tmp_path / "obqa")}, "test")
    # A generic {question, choices, answer, passage} file (the example) reads as choices_index.
    generic = [{"q": "Which?", "opts": ["one", "two"], "gold": 1, "ctx": "Two it is."}]
    write_jsonl(tmp_path / "mine.jsonl", generic)
    got = rows_of(
        {
            "path": str(tmp_path / "mine.jsonl"),
            "columns": {"question": "q", "choices": "opts", "answer": "gold", "passage": "ctx"},
        }
    )
    assert [(e.answer, e.label, e.support) for e in got] == [
        ("two", 1, "Two it is."),
        ("one", 0, "Two it is."),
    ]


def test_recorded_label_columns_are_optional_but_whole(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}", "answer": "a", "label": i % 2, "weak": 0.3} for i in range(4)]
    write_jsonl(tmp_path / "with.jsonl", rows)
    got = rows_of({"path": str(tmp_path / "with.jsonl"), "label_columns": ["weak"]})
    assert [e.labels for e in got] == [{"weak": 0.3}] * 4
    write_jsonl(tmp_path / "without.jsonl", [{k: v for k, v in r.items() if k != "weak"} for r in rows])
    assert all(
        not e.labels for e in rows_of({"path": str(tmp_path / "without.jsonl"), "label_columns": ["weak"]})
    )
    rows[2].pop("weak")
    write_jsonl(tmp_path / "gap.jsonl", rows)
    with pytest.raises(DataError, match=r"gap\.jsonl: row for 'q2' lacks label column\(s\) \['weak'\]"):
        rows_of({"path": str(tmp_path / "gap.jsonl"), "label_columns": ["weak"]})


# -- bad data ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "fmt", "message"),
    [
        (
            {"question": "q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}},
            "choices_key",
            r"missing column 'answerKey' \(columns: choices, question\)",
        ),
        (
            {"question": "q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"},
            "choices_key",
            r"'E' is not among the choice labels \['A', 'B'\]",
        ),
        (
            {"question": "q?", "choices": [], "answer": 0},
            "choices_index",
            r"'answer' should index the 0 choices",
        ),
        (
            {"question": "q?", "choices": ["a", ""], "answer": 0},
            "choices_index",
            r"at least two non-empty choices",
        ),
        ({"text": "t", "label": 2}, "binary", r"column 'label' should be gold 0 or 1, got 2"),
        ({"text": "", "label": 1}, "binary", r"column 'text' should be a non-empty string"),
        ({"chosen": "x same", "rejected": "x same "}, "pairwise", r"should differ"),
        ({"chosen": "yes", "rejected": "no"}, "pairwise", r"share no prompt; give a `prompt` column"),
    ],
)
def test_bad_records_name_file_row_and_column(tmp_path: Path, record: dict, fmt: str, message: str) -> None:
    good = {
        "choices_key": {
            "question": "ok?",
            "choices": {"text": ["a", "b"], "label": ["A", "B"]},
            "answerKey": "A",
        },
        "choices_index": {"question": "ok?", "choices": ["a", "b"], "answer": 0},
        "binary": {"text": "fine", "label": 1},
        "pairwise": {"chosen": "x yes", "rejected": "x no"},
    }[fmt]
    path = write_jsonl(tmp_path / "bad.jsonl", [good, record])
    with pytest.raises(DataError, match=rf"bad\.jsonl:2: .*{message}"):
        rows_of({"path": str(path), "format": fmt})


def test_more_bad_data(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "dup.jsonl",
        [{"question": "q", "answer": "a", "label": 1}, {"question": "q", "answer": "a", "label": 0}],
    )
    with pytest.raises(
        DataError, match=r"dup\.jsonl: question 'q' with answer 'a' appears with gold 0 and 1"
    ):
        rows_of({"path": str(tmp_path / "dup.jsonl")})
    assert rows_of({"path": str(tmp_path / "dup.jsonl"), "duplicates": "drop"}) == []
    write_jsonl(tmp_path / "odd.jsonl", [{"foo": 1, "bar": 2}])
    with pytest.raises(DataError, match=r"odd\.jsonl: no format fits a record with columns \['bar', 'foo'\]"):
        rows_of({"path": str(tmp_path / "odd.jsonl")})
    (tmp_path / "empty.csv").write_text("text,label\n")
    with pytest.raises(DataError, match=r"empty\.csv: no records"):
        rows_of({"path": str(tmp_path / "empty.csv")})
    with pytest.raises(DataError, match=r"nope\.jsonl: no such data file"):
        rows_of({"path": str(tmp_path / "nope.jsonl")})
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(DataError, match=r"unknown file type '\.txt'"):
        rows_of({"path": str(tmp_path / "data.txt")})
    with pytest.raises(DataError, match=r"HF_HUB_OFFLINE is set"):
        rows_of({"hub": "org/never-downloaded"})
    rows = rows_of({"path": str(write_jsonl(tmp_path / "arc.jsonl", mc_records(5)))})
    with pytest.raises(
        DataError,
        match=r"asked for 6 questions across splits \(a: 4, b: 2\), but there are 5 questions in arc",
    ):
        split_by_question(rows, {"a": 4, "b": 2}, seed=0, what="questions in arc")


def test_spec_errors_name_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    for text, message in [
        ("dataset: {name: sqiq}\n", "unknown dataset 'sqiq'; registered: sciq, boolq"),
        ("dataset: {format: mcq, path: x}\n", "dataset.format: Input should be 'auto', 'sciq'"),
        ("dataset: {}\n", "give `name:` (a registry entry), `path:`"),
        (
            "dataset: {path: x, colums: {}}\n",
            "dataset.colums: Extra inputs are not permitted (allowed here: columns, config,",
        ),
    ]:
        cfg.write_text(text)
        with pytest.raises(ConfigError, match=r"cfg\.yaml: invalid config\n  .*" + re.escape(message)):
            from oversight.labelling.label import LabelConfig

            load_config(cfg, LabelConfig, only=("dataset",))
    assert parse_spec("boolq").name == "boolq" and parse_spec(str(cfg)).path == cfg
    assert parse_spec("{path: a.csv, format: binary}").format == "binary"
    with pytest.raises(ValueError, match="neither a registered dataset"):
        parse_spec("no-such-thing")


def test_every_preset_is_a_valid_spec() -> None:
    for name in PRESETS:
        full = DatasetSpec(name=name).resolved()
        assert full.hub, name  # each has its hub id; a local `path:` in the hub's schema overrides it


def test_sizes_counts_shares_and_rest() -> None:
    from w2sg.data import resolve_sizes
    from w2sg.experiment import Sizes

    assert resolve_sizes({"a": 0.25, "b": 10, "c": "rest"}, 100) == {"a": 25, "b": 10, "c": 65}
    with pytest.raises(DataError, match="only one split can be `rest`"):
        resolve_sizes({"a": "rest", "b": "rest"}, 10)
    for bad in (0, 1.5, "all"):
        with pytest.raises(ValueError):
            Sizes(weak=bad)  # type: ignore[arg-type]


# -- the commands on data that is not SciQ -------------------------------------------------------

TINY = {"kind": "features", "path": "embedded/tiny-gpt2", "max_length": 48}
FAST = {"lr": 1.0e-3, "epochs": 2, "batch_size": 16, "eval_every": 4, "device": "cpu"}


def tiny_train(tmp_path: Path, name: str, dataset: dict, sizes: dict) -> dict:
    """A `w2sg train` config that trains in seconds: the embedded tiny model's features."""
    return {
        "name": name,
        "dataset": dataset,
        "sizes": sizes,
        "weak": TINY,
        "weak_train": FAST,
        "strong": {**TINY, "pooling": "mean"},
        "strong_train": FAST,
        "n_boot": 100,
        "out_dir": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
    }


def arc_folder(tmp_path: Path) -> Path:
    """A dataset folder in ARC's schema plus passages: train (no passages needed) and test."""
    data = tmp_path / "arc"
    write_jsonl(data / "train.jsonl", mc_records(60, 100, passage=False))
    write_jsonl(data / "test.jsonl", mc_records(60))
    return data


def test_w2sg_train_on_a_choices_key_file_and_a_binary_csv(tmp_path: Path) -> None:
    data = arc_folder(tmp_path)
    binary = tmp_path / "bin"
    rng = random.Random(0)
    for split, n in (("train", 80), ("test", 30)):
        write_csv(
            binary / f"{split}.csv",
            [{"text": f"item {i} {rng.random():.4f}", "label": str(i % 2)} for i in range(n)],
        )
    for name, dataset in (("arc", {"path": str(data)}), ("bin", {"path": str(binary), "format": "binary"})):
        cfg = tmp_path / f"{name}.yaml"
        sizes = {"weak": 0.3, "strong": 0.4, "val": "rest", "test": 20}
        cfg.write_text(yaml.safe_dump(tiny_train(tmp_path, name, dataset, sizes)))
        out = w2sg("train", str(cfg))
        assert out.returncode == 0, out.stderr
        run = next((tmp_path / "runs").glob(f"{name}-*"))
        result = json.loads((run / "results.json").read_text())
        n_test = {"arc": 40, "bin": 20}[name]  # arc: 2 rows per question; bin: one row per text
        assert result["sizes"]["test"] == n_test and result["students"][0]["accuracy"]["value"] >= 0
        assert json.loads((run / "config.json").read_text())["config"]["dataset"]["path"] == dataset["path"]


def test_w2sg_label_and_run_on_a_dataset_with_passages(tmp_path: Path) -> None:
    data = arc_folder(tmp_path)
    label_cfg = tmp_path / "label.yaml"
    label_cfg.write_text(
        yaml.safe_dump(
            {
                "dataset": {"path": str(data)},
                "questions": 10,
                "store": str(tmp_path / "l.sqlite"),
                "models": {"reader": {"name": "extractive"}, "judge": {"name": "scripted/j"}},
                "graph": {
                    "kind": "debate",
                    "protocol": "sequential",
                    "rounds": 1,
                    "debater": "reader",
                    "judge": "judge",
                },
            }
        )
    )
    out = w2sg("label", str(label_cfg))
    assert out.returncode == 0 and "20 labelled" in out.stdout, out.stderr
    with sqlite3.connect(tmp_path / "l.sqlite") as db:
        records = [json.loads(r[0]) for r in db.execute("SELECT record FROM labels")]
    # The extractive debaters quoted the fixture's passages, verified; the judge never saw them.
    assert any(q["verified"] for r in records for t in r["transcript"] for q in t["quotes"])

    from test_pipeline import small

    cfg = small(tmp_path)
    cfg["dataset"] = {"path": str(data)}
    cfg["sizes"] = {"judge": 0.3, "calib": 0.2, "strong": 0.3, "val": "rest", "test": 20}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = w2sg("run", str(path))
    assert out.returncode == 0, out.stderr
    # The console and the report say the regime in words, for every supervisor.
    assert "the ceiling (" in out.stdout and ("Weak-to-strong gap for" in out.stdout or "No " in out.stdout)
    run = next((tmp_path / "runs").glob("e2e-*"))
    report = (run / "results.md").read_text()
    assert any(w in report for w in ("Weak-to-strong gap for", "No gap beyond", "No weak-to-strong regime"))
    result = json.loads((run / "results.json").read_text())
    rows = json.loads((run / "config.json").read_text())["data"]["rows"]
    assert rows == {
        "judge": 36,
        "calib": 24,
        "strong": 36,
        "val": 24,
        "test": 40,
    }  # 60 questions, 2 rows each
    debate = next(s for s in result["sources"] if s["source"] == "debate")
    assert debate["raw"]["n"] == 36 and debate["judge"]["protocol"] == "sequential"
    # Too few questions with a passage: the message says which filter reduced the count.
    cfg["sizes"] = {"judge": 40, "calib": 10, "strong": 10, "val": 5, "test": 5}
    path.write_text(yaml.safe_dump(cfg))
    out = w2sg("run", str(path))
    assert out.returncode == 2
    assert f"but there are 60 questions with a passage in {data} test (of its 60 questions)" in out.stderr


def test_review_cases(tmp_path: Path) -> None:
    """Inputs a first review found mishandled: each now reads right or fails naming the file."""
    # A blank or null distractor is skipped, not a choice called "None".
    sciq = [
        {"question": "q?", "correct_answer": "a", "distractor1": "b", "distractor2": None, "distractor3": ""}
    ]
    got = rows_of({"path": str(write_jsonl(tmp_path / "s.jsonl", sciq))})
    assert [(e.answer, e.label) for e in got] == [("a", 1), ("b", 0)]
    # A wrong choice repeating the correct one is no row; all_choices keeps one row per text.
    mc = [{"question": "2+2?", "choices": ["4", "4 ", "5", "5"], "answer": 0}]
    path = write_jsonl(tmp_path / "mc.jsonl", mc)
    assert [(e.answer, e.label) for e in rows_of({"path": str(path), "strategy": "all_choices"})] == [
        ("4", 1),
        ("5", 0),
    ]
    # A prompt column that does not begin the dialogue is an error, not two whole dialogues.
    hh = [{"prompt": "Hi?", "chosen": "Hello? Yes.", "rejected": "Hello? No."}]
    with pytest.raises(DataError, match=r"`prompt` should begin both chosen and rejected"):
        rows_of({"path": str(write_jsonl(tmp_path / "hh.jsonl", hh))})
    # CSV: a byte-order mark is not part of a column; a stray comma is named with its line.
    (tmp_path / "bom.csv").write_text("\ufefftext,label\nfine,1\n", encoding="utf-8")
    assert rows_of({"path": str(tmp_path / "bom.csv")})[0].question == "fine"
    (tmp_path / "comma.csv").write_text("text,label\nfine,1\nWhat is 2,3?,0\n")
    with pytest.raises(DataError, match=r"comma\.csv:3: 3 cells under a header of 2"):
        rows_of({"path": str(tmp_path / "comma.csv")})
    (tmp_path / "latin.csv").write_bytes("text,label\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv: not UTF-8 text"):
        rows_of({"path": str(tmp_path / "latin.csv")})
    # A question id must include the question: two questions on one passage are two questions.
    with pytest.raises(ValidationError, match=r"qid_fields: \[question\] or \[passage, question\]"):
        DatasetSpec(path=tmp_path, qid_fields=["passage"])
    # A local copy of the hub's splits is read by the hub's split names (boolq: test = validation).
    import datasets

    rec = {"question": "is it", "answer": True, "passage": "It is."}
    datasets.DatasetDict({"validation": datasets.Dataset.from_list([rec])}).save_to_disk(str(tmp_path / "bq"))
    assert len(rows_of({"name": "boolq", "path": str(tmp_path / "bq")}, "test")) == 2


def test_overrides_keep_the_default_dataset_and_bad_splits_fail_early(tmp_path: Path) -> None:
    from w2sg.experiment import W2SGConfig, prepare_splits

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"weak": TINY, "strong": TINY}))
    got = load_config(cfg, W2SGConfig, overrides=["dataset.strategy=all_choices"])
    assert got.dataset.name == "sciq" and got.dataset.strategy == "all_choices"  # the default kept
    one = write_jsonl(tmp_path / "one.jsonl", mc_records(20, passage=False))
    same = W2SGConfig.model_validate({"weak": TINY, "strong": TINY, "dataset": {"path": str(one)}})
    with pytest.raises(
        DataError, match=r"one\.jsonl: its train and test splits are the same questions.*`split:"
    ):
        prepare_splits(same)
    data = arc_folder(tmp_path)
    recorded = W2SGConfig.model_validate(
        {
            "weak": TINY,
            "strong": TINY,
            "dataset": {"path": str(data)},
            "label_sources": ["weak", "weak_p_true"],
            "sizes": {"weak": 10, "strong": 20, "val": 10},
        }
    )
    with pytest.raises(DataError, match=r"has no label source 'weak_p_true'"):
        prepare_splits(recorded)  # before any model is trained


# -- one file, split by question (`split:`) -------------------------------------------------------


def qids_of(spec: dict, split: str) -> set[str]:
    return {e.qid for e in rows_of(spec, split)}


def test_one_file_splits_by_question_seeded_and_independent_of_row_order(tmp_path: Path) -> None:
    records = mc_records(50, passage=False)
    path = write_jsonl(tmp_path / "one.jsonl", records)
    spec = {"path": str(path), "split": {"test": 0.2, "seed": 0}}
    train, test = rows_of(spec, "train"), rows_of(spec, "test")
    by_q = {e.qid for e in train}, {e.qid for e in test}
    assert not by_q[0] & by_q[1] and len(by_q[0] | by_q[1]) == 50  # every question, in one split only
    assert len(by_q[1]) == 10 and len(test) == 20  # the share, in questions (2 rows each)
    assert qids_of(spec, "test") == by_q[1]  # deterministic
    shuffled = write_jsonl(tmp_path / "shuffled.jsonl", random.Random(1).sample(records, len(records)))
    assert qids_of({**spec, "path": str(shuffled)}, "test") == by_q[1]  # row order does not move it
    reseeded = qids_of({**spec, "split": {"test": 0.2, "seed": 1}}, "test")
    assert len(reseeded) == 10 and reseeded != by_q[1]
    assert len(qids_of({**spec, "split": {"test": 7}}, "test")) == 7  # a count of questions
    # Without `split:`, one file is every split, as before.
    assert [e.id for e in rows_of({"path": str(path)}, "test")] == [
        e.id for e in rows_of({"path": str(path)})
    ]
    with pytest.raises(DataError, match=r"with `split:`, the data has the splits train and test, not 'dev'"):
        rows_of(spec, "dev")
    with pytest.raises(DataError, match=r"split test 60 of its 50 questions leaves no train question"):
        rows_of({**spec, "split": {"test": 60}}, "test")
    for bad in (1.0, "rest", 0):
        with pytest.raises(ValidationError, match=r"split\.test"):
            DatasetSpec.model_validate({**spec, "split": {"test": bad}})


def test_w2sg_train_on_one_split_file_and_its_run_id_follows_the_split(tmp_path: Path) -> None:
    from w2sg.data import fingerprint
    from w2sg.experiment import W2SGConfig, prepare_splits

    one = write_jsonl(tmp_path / "one.jsonl", mc_records(60, passage=False))
    dataset = {"path": str(one), "split": {"test": 0.25, "seed": 0}}
    raw = tiny_train(tmp_path, "one", dataset, {"weak": 0.3, "strong": 0.4, "val": "rest"})
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(raw))
    out = w2sg("train", str(tmp_path / "one.yaml"))
    assert out.returncode == 0, out.stderr
    run = next((tmp_path / "runs").glob("one-*"))
    assert json.loads((run / "results.json").read_text())["sizes"]["test"] == 30  # 15 questions, 2 rows each
    assert json.loads((run / "config.json").read_text())["config"]["dataset"]["split"] == {
        "test": 0.25,
        "seed": 0,
    }

    def run_id(split: dict) -> str:
        cfg = W2SGConfig.model_validate({**raw, "dataset": {"path": str(one), "split": split}})
        return cfg.run_id(fingerprint(prepare_splits(cfg)))

    assert run.name == run_id({"test": 0.25, "seed": 0}) != run_id({"test": 0.25, "seed": 1})


def test_rows_keep_their_source_id_and_columns(tmp_path: Path) -> None:
    records = mc_records(3)
    rows = rows_of({"path": str(write_jsonl(tmp_path / "ids.jsonl", records))})
    assert [e.source_id for e in rows] == ["q0", "q0", "q1", "q1", "q2", "q2"]
    assert rows[0].source == {
        k: v for k, v in records[0].items() if k != "passage"
    }  # the passage is `support`
    renamed = [{**{k: v for k, v in r.items() if k != "id"}, "uid": 10 + i} for i, r in enumerate(records)]
    path = write_jsonl(tmp_path / "uid.jsonl", renamed)
    assert {e.source_id for e in rows_of({"path": str(path), "columns": {"id": "uid"}})} == {10, 11, 12}
    with pytest.raises(DataError, match=r"uid\.jsonl:1: missing id column 'key'"):
        rows_of({"path": str(path), "columns": {"id": "key"}})
    # No id column: the record's row from 0 (a blank line is no row; SciQ's files are like this).
    (tmp_path / "gap.jsonl").write_text(json.dumps(renamed[0]) + "\n\n" + json.dumps(renamed[1]) + "\n")
    assert [e.source_id for e in rows_of({"path": str(tmp_path / "gap.jsonl")})] == [0, 0, 1, 1]
