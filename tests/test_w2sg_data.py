"""SciQ through the dataset layer, question-level splits and sizes, label sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from w2sg.data import DataError, label_source, make_example, split_by_question, with_labels
from w2sg.datasets import DatasetSpec, load, load_split, sciq_dir


@pytest.fixture(scope="module")
def pool():  # type: ignore[no-untyped-def]
    return load("sciq", "train")


def test_shared_files_load_with_recorded_weak_labels(pool) -> None:  # type: ignore[no-untyped-def]
    raw = [json.loads(line) for line in (sciq_dir() / "train_weak_labels.jsonl").read_text().splitlines()]
    assert len(raw) == 10_000 and sum(r["label"] for r in raw) == 5_000
    acc = sum((r["weak_p_true"] > 0.5) == bool(r["label"]) for r in raw) / len(raw)
    assert acc == pytest.approx(0.7293, abs=1e-4)  # the figure the data README gives
    assert all(set(e.labels) == {"weak_p_true", "weak_p_true_with_support"} for e in pool)


def test_test_split_is_binarized_two_rows_per_question() -> None:
    test = load("sciq", "test")
    assert len(test) == 1000
    by_q: dict[str, list[int]] = {}
    for e in test:
        by_q.setdefault(e.qid, []).append(e.label)
    assert all(sorted(v) == [0, 1] for v in by_q.values())
    assert sum(bool(e.support) for e in test) > 900  # a few SciQ questions have no passage
    assert [e.answer for e in load("sciq", "test", seed=0)] == [e.answer for e in test]  # seeded
    assert [e.answer for e in load("sciq", "test", seed=1)] != [e.answer for e in test]
    assert not any(e.labels for e in test)  # the recorded label columns are optional: test has none


def test_splits_never_share_a_question(pool) -> None:  # type: ignore[no-untyped-def]
    splits = split_by_question(pool, {"weak": 500, "strong": 1000, "val": 200}, seed=3)
    qsets = {k: {e.qid for e in v} for k, v in splits.items()}
    assert {k: len(v) for k, v in qsets.items()} == {"weak": 500, "strong": 1000, "val": 200}
    assert not (qsets["weak"] & qsets["strong"]) and not (qsets["weak"] & qsets["val"])
    assert not (qsets["strong"] & qsets["val"])
    again = split_by_question(pool, {"weak": 500, "strong": 1000, "val": 200}, seed=3)
    assert [e.id for e in again["strong"]] == [e.id for e in splits["strong"]]


def test_too_large_splits_are_refused(pool) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=r"asked for 9000 questions.*give smaller counts"):
        split_by_question(pool, {"a": 9000}, seed=0)
    # Fewer questions than splits: no sizes could fit, so none are suggested.
    two = [e for e in pool if e.qid in sorted({x.qid for x in pool})[:2]]
    with pytest.raises(DataError) as e:
        split_by_question(two, {"a": 1, "b": 1, "c": "rest"}, seed=0, what="questions in x")
    assert str(e.value).endswith("2 questions in x; no sizes fit: each of the 3 splits needs a question")
    with pytest.raises(DataError, match=r"; drop the filter$"):
        split_by_question(two, {"a": 1, "b": 1, "c": 1}, seed=0, remedy="drop the filter")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"question": "q", "answer": "a", "label": 1', "not valid JSON"),
        ('{"question": "q", "answer": "a"}', "missing column 'label'"),
        ('{"question": "q", "answer": "a", "label": 2}', "should be gold 0 or 1"),
        ('{"question": "", "answer": "a", "label": 1}', "'question' should be a non-empty string"),
        ('{"question": "q", "answer": "a", "label": 1, "weak_p_true": 1.5}', "probability in"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, line: str, expected: str) -> None:
    good = json.dumps({"question": "q0", "answer": "a0", "label": 0, "weak_p_true": 0.2})
    path = tmp_path / "rows.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(DataError, match=rf"rows\.jsonl:2: .*{expected}"):
        load_split(DatasetSpec(path=path, format="binarized", label_columns=["weak_p_true"]), "train")


def test_a_folder_without_the_files_is_an_error_not_a_download(tmp_path: Path) -> None:
    (tmp_path / "other.jsonl").write_text("")
    with pytest.raises(
        DataError,
        match=r"no file for split 'train' \(looked for train_weak_labels\.jsonl; the folder has other\.jsonl",
    ):
        load_split(DatasetSpec(name="sciq", path=tmp_path), "train")


def test_label_sources() -> None:
    rows = [make_example("q1", "a", 1), make_example("q1", "b", 0)]
    rows = with_labels(rows, "teacher", [0.9, 0.4])
    assert label_source(rows, "teacher") == [0.9, 0.4]
    assert label_source(rows, "gold") == [1.0, 0.0]
    with pytest.raises(DataError, match="has no label source 'debate'"):
        label_source(rows, "debate")
    with pytest.raises(ValueError, match="has 1 values for 2 examples"):
        with_labels(rows, "x", [0.5])


def test_repeated_rows_are_merged_and_contradictory_ones_dropped(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    rows = [
        {"question": "q1", "answer": "a", "label": 1, "weak_p_true": 0.9, "weak_p_true_with_support": 0.8},
        {"question": "q1", "answer": "a", "label": 1, "weak_p_true": 0.1, "weak_p_true_with_support": 0.2},
        {"question": "q1", "answer": "b", "label": 0, "weak_p_true": 0.3, "weak_p_true_with_support": 0.3},
        {"question": "q2", "answer": "c", "label": 1, "weak_p_true": 0.6, "weak_p_true_with_support": 0.6},
        {"question": "q2", "answer": "c", "label": 0, "weak_p_true": 0.6, "weak_p_true_with_support": 0.6},
    ]
    (tmp_path / "train_weak_labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.INFO, logger="w2sg.data"):
        got = load_split(DatasetSpec(name="sciq", path=tmp_path), "train")
    assert [(e.question, e.answer, e.label, e.labels["weak_p_true"]) for e in got] == [
        ("q1", "a", 1, 0.9),  # the first of two agreeing copies
        ("q1", "b", 0, 0.3),
    ]  # q2/c says both 1 and 0: dropped
    assert "1 repeated rows merged" in caplog.text
    assert "1 ids with contradictory gold dropped (2 rows)" in caplog.text


def test_the_shared_train_file_has_its_repeats_resolved() -> None:
    rows = load("sciq", "train")
    assert len({e.id for e in rows}) == len(rows) == 9_979  # 17 repeats merged, 2 ids (4 rows) dropped


def test_changed_data_gets_a_new_run_folder(tmp_path: Path) -> None:
    # The same config over data that differs in one row must not reuse (and report) the old run.
    import shutil

    from agents.names import resolve_model_path
    from w2sg.experiment import Sizes, W2SGConfig, prepare_splits, run_experiment
    from w2sg.models import ModelConfig
    from w2sg.train import TrainConfig

    data = tmp_path / "data"
    data.mkdir()
    for name in ("train_weak_labels.jsonl", "test.jsonl"):
        shutil.copy(sciq_dir() / name, data / name)
    tiny = ModelConfig(kind="features", path="embedded/tiny-gpt2", max_length=32)
    fast = TrainConfig(lr=1e-3, epochs=1, batch_size=16, eval_every=4, device="cpu")
    cfg = W2SGConfig(
        sizes=Sizes(weak=10, strong=10, val=5, test=10),
        dataset=DatasetSpec(name="sciq", path=data),
        weak=tiny,
        weak_train=fast,
        strong=tiny,
        strong_train=fast,
        n_boot=100,
        out_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
    )
    first = run_experiment(cfg, resolve=resolve_model_path)
    # Change the passage of one test question the run uses (no model reads it: only the data differs).
    used = prepare_splits(cfg)["test"][0].question
    lines = (data / "test.jsonl").read_text().splitlines()
    for i, line in enumerate(lines):
        row = json.loads(line)
        if row["question"] == used:
            lines[i] = json.dumps({**row, "support": row.get("support", "") + " Edited."})
    (data / "test.jsonl").write_text("\n".join(lines) + "\n")
    second = run_experiment(cfg, resolve=resolve_model_path)
    assert second.run_id != first.run_id
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted([first.run_id, second.run_id])
    recorded = json.loads((tmp_path / "runs" / second.run_id / "config.json").read_text())["data"]
    assert second.run_id == cfg.run_id(recorded["fingerprint"]) and recorded["rows"]["test"] == 20
