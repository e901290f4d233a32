"""`w2sg export` never clobbers what a user owns: an existing output needs --force, the wrong kind
of object (a folder where a file goes, a file where a folder goes) is refused even with --force
and never renamed, and no temporary file is left behind, whatever happens."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli import w2sg

from oversight.labelling.export import write_export
from oversight.labelling.store import LabelRow, LabelStore


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A label store with three labels, written directly (no labelling run needed)."""
    path = tmp_path / "store" / "labels.sqlite"
    s = LabelStore(path)
    for i in range(3):
        s.put(
            LabelRow(
                example_id=f"q{i}-a",
                protocol="blind",
                config_hash="abc",
                status="ok",
                p_true=0.25 * i,
                record={"transcript": [], "verdict": {"p_true": 0.25 * i}, "seed": 0},
            )
        )
    s.close()
    return path


def export(store: Path, out: Path, *args: str) -> tuple[int, str]:
    r = w2sg("export", str(store), "--out", str(out), *args)
    return r.returncode, r.stderr


def listing(folder: Path) -> list[str]:
    """Everything under `folder`, relative; temporaries and moved-aside copies would show here."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_jsonl_onto_an_existing_file_needs_force(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine.jsonl"
    out.write_text("my own notes\n")
    code, err = export(store, out)
    assert code == 2 and f"{out} exists; pass --force" in err
    assert out.read_text() == "my own notes\n"
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["mine.jsonl"]

    code, err = export(store, out, "--force")
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["example_id"] for r in rows] == ["q0-a", "q1-a", "q2-a"]
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["mine.jsonl"]  # no temporary


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("force", [False, True])
def test_a_file_export_onto_a_folder_is_refused(store: Path, tmp_path: Path, fmt: str, force: bool) -> None:
    out = tmp_path / "exp"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = export(store, out, "--format", fmt, *(["--force"] if force else []))
    assert code == 2, err
    assert f"{out} is a folder, but --format {fmt} writes a file" in err and "Traceback" not in err
    assert listing(tmp_path / "exp") == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp", "store"]  # no exp.tmp left


@pytest.mark.parametrize("force", [False, True])
def test_an_hf_export_onto_a_file_is_refused_and_the_file_kept(
    store: Path, tmp_path: Path, force: bool
) -> None:
    out = tmp_path / "hf-labels"
    out.write_text("a file of mine")
    code, err = export(store, out, "--format", "hf", *(["--force"] if force else []))
    assert code == 2, err
    assert f"{out} is a file, but --format hf writes a folder" in err and "Traceback" not in err
    assert out.read_text() == "a file of mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf-labels", "store"]  # never renamed to .old


def test_an_hf_folder_is_replaced_whole_only_with_force(store: Path, tmp_path: Path) -> None:
    import datasets

    out = tmp_path / "hf"
    out.mkdir()
    (out / "old.txt").write_text("old")
    code, err = export(store, out, "--format", "hf")
    assert code == 2 and f"{out} exists; pass --force" in err
    assert listing(out) == ["old.txt"]

    code, err = export(store, out, "--format", "hf", "--force")
    assert code == 0, err
    assert "old.txt" not in listing(out)
    assert len(datasets.load_from_disk(str(out))) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "store"]  # nothing moved aside is left


def test_a_new_output_needs_no_force(store: Path, tmp_path: Path) -> None:
    for name, fmt in (("new/a.jsonl", "jsonl"), ("new/a.parquet", "parquet"), ("new/a-hf", "hf")):
        code, err = export(store, tmp_path / name, "--format", fmt)
        assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["a-hf", "a.jsonl", "a.parquet"]


def test_the_store_itself_is_never_the_output(store: Path) -> None:
    before = store.read_bytes()
    code, err = export(store, store, "--force")
    assert code == 2 and "is the store being exported" in err
    assert store.read_bytes() == before


@pytest.mark.parametrize("exists", [False, True])
def test_a_failed_write_leaves_no_temporary_and_the_target_as_it_was(tmp_path: Path, exists: bool) -> None:
    out = tmp_path / "x.jsonl"
    if exists:
        out.write_text("before\n")
    rows = [{"example_id": "a"}, {"example_id": "b", "bad": object()}]  # fails on the second row
    with pytest.raises(TypeError):
        write_export(rows, out, "jsonl", **({"force": True} if exists else {}))
    assert os.listdir(tmp_path) == (["x.jsonl"] if exists else [])
    if exists:
        assert out.read_text() == "before\n"
