"""The Python API (`oversight.api`, docs/python-api.md) runs the CLI's code: the same validation,
the same run folders and label stores, reused across the two; examples/quickstart.py runs on a
tiny SciQ slice with tiny models."""

from __future__ import annotations

import asyncio
import json
import runpy
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agents import ConfigError
from oversight import api
from oversight.cli.app import app
from oversight.labelling.label import LabelConfig
from w2sg.data import DataError
from w2sg.datasets import DatasetSpec, sciq_dir
from w2sg.experiment import W2SGConfig
from w2sg.results import ExperimentResult

ROOT = Path(__file__).resolve().parents[1]
BLIND = {"kind": "debate", "protocol": "blind", "judge": "scripted/judge"}


@pytest.fixture
def sciq(tmp_path: Path) -> Path:
    """A tiny SciQ folder: the first 80 train questions and 20 test questions of the shared files."""
    out = tmp_path / "sciq"
    out.mkdir()
    for name, n in (("train_weak_labels.jsonl", 160), ("test.jsonl", 20)):
        lines = (sciq_dir() / name).read_text().splitlines()[:n]
        (out / name).write_text("\n".join(lines) + "\n")
    return out


def tiny(sciq: Path, tmp_path: Path) -> dict:
    model = {"kind": "features", "path": "embedded/tiny-gpt2", "max_length": 48}
    fast = {"lr": 1e-3, "epochs": 1, "batch_size": 16, "eval_every": 4, "device": "cpu"}
    return {
        "name": "api",
        "dataset": {"name": "sciq", "path": str(sciq)},
        "sizes": {"weak": 12, "strong": 16, "val": 8, "test": 12},
        "weak": model,
        "weak_train": fast,
        "strong": model,
        "strong_train": fast,
        "n_boot": 200,
        "out_dir": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
    }


def test_quickstart_runs_on_tiny_models(sciq: Path, tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    argv = ["quickstart.py", "--data", str(sciq), "--out", str(out), "--weak", "embedded/tiny-gpt2"]
    argv += ["--strong", "embedded/tiny-gpt2", "--questions", "12", "--epochs", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(ROOT / "examples" / "quickstart.py"), run_name="__main__")
    shown = capsys.readouterr().out
    assert "SciQ train: 160 rows" in shown and "labels from the blind judge; accuracy" in shown
    table = shown.split("source   loss", 1)[1].splitlines()
    assert [line.split()[:2] for line in table[1:]] == [["weak", "xent"], ["blind", "xent"]]
    # The CLI's artefacts: the label store, a complete run folder with its report.
    assert (out / "labels.sqlite").exists()
    (run,) = (out / "runs").iterdir()
    assert {"results.json", "results.md", "predictions.npz"} <= {p.name for p in run.iterdir()}
    assert "| blind |" in (run / "results.md").read_text()


def test_train_w2sg_is_w2sg_train(sciq: Path, tmp_path: Path) -> None:
    """A dict, the config object and a YAML file are one config: one run folder, trained once, and
    `w2sg train` on the file loads it."""
    fields = tiny(sciq, tmp_path)
    first = api.train_w2sg(fields)
    assert isinstance(first, ExperimentResult)
    done = tmp_path / "runs" / first.run_id / "results.json"
    stamp = done.stat().st_mtime_ns
    cfg = api.load_config(fields, W2SGConfig)
    assert api.train_w2sg(cfg).model_dump_json() == first.model_dump_json()  # loaded, not retrained
    path = tmp_path / "w2sg.yaml"
    path.write_text(yaml.safe_dump(fields, sort_keys=False))  # key order is part of a config
    assert api.train_w2sg(path).run_id == first.run_id
    result = CliRunner().invoke(app, ["train", str(path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert f"{first.run_id}/results.md" in result.output.replace("\n", "")
    assert done.stat().st_mtime_ns == stamp  # nothing retrained


def test_train_on_labels_from_a_graph(sciq: Path, tmp_path: Path) -> None:
    fields = tiny(sciq, tmp_path)
    splits = api.w2sg_splits(fields)
    rows = splits["strong"] + splits["val"]
    labels = api.label(BLIND, rows, store=tmp_path / "labels.sqlite")
    assert len(labels) == len(rows) and labels.run.labelled == len(rows) and labels.run.quality is not None
    result = api.train_w2sg(fields, labels={"blind": labels})
    assert [s.source for s in result.sources] == ["weak", "blind"]
    blind = next(s for s in result.sources if s.source == "blind")
    assert blind.labels.n == len(splits["strong"])  # scored on the strong split it labelled
    # The same labels as a plain mapping are the same data: the same run folder.
    again = api.train_w2sg(fields, labels={"blind": dict(labels.p_true)})
    assert again.run_id == result.run_id
    # A row without a label is named, before anything trains.
    short = dict(list(labels.p_true.items())[1:])
    with pytest.raises(DataError, match="has no label source 'blind'"):
        api.train_w2sg(fields, labels={"blind": short})


def test_label_is_w2sg_label(tmp_path: Path) -> None:
    """Labels from the API are the CLI's: the same config hash and store rows; a second call (or
    the CLI on the same config) labels nothing again; it runs from inside an event loop too."""
    store = tmp_path / "labels.sqlite"
    cfg_file = tmp_path / "label.yaml"
    fields = {"split": "test", "questions": 6, "graph": BLIND, "store": str(store), "concurrency": 4}
    cfg_file.write_text(yaml.safe_dump(fields))
    first = api.label(config=cfg_file)
    assert first.run.labelled == 12 and first.store == store

    async def in_a_notebook() -> api.Labels:  # Jupyter's loop is running: asyncio.run would refuse
        return api.label(BLIND, questions=6, split="test", store=store, concurrency=4)

    again = asyncio.run(in_a_notebook())
    assert again.run.config_hash == first.run.config_hash and again.run.already_done == 12
    assert again.p_true == first.p_true
    result = CliRunner().invoke(app, ["label", str(cfg_file)])
    assert result.exit_code == 0 and "0 labelled, 0 failed, 12 already done" in result.output


def test_load_config_validates_like_the_cli(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"<dict>: .*\n  graph.colour"):
        api.load_config({"graph": {**BLIND, "colour": "red"}}, LabelConfig)
    with pytest.raises(ConfigError, match=r"<dict>: strong.path: unknown embedded model 'embedded/smolm2'"):
        bad = {"weak": {"kind": "features", "path": "embedded/tiny-gpt2"}}
        api.load_config({**bad, "strong": {"kind": "features", "path": "embedded/smolm2"}}, W2SGConfig)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"graph": BLIND, "concurrency": 2}))
    cfg = api.load_config(path, LabelConfig, ["concurrency=8"])
    assert cfg.concurrency == 8 and api.load_config(cfg, LabelConfig, ["seed=3"]).seed == 3
    with pytest.raises(ConfigError, match=f"{path}: invalid --set\n  concurrency: "):
        api.load_config(path, LabelConfig, ["concurrency=0"])
    with pytest.raises(ConfigError, match="a LabelConfig where a W2SGConfig, a dict or a YAML path"):
        api.load_config(cfg, W2SGConfig)


def test_load_dataset_takes_names_paths_and_specs(sciq: Path, tmp_path: Path) -> None:
    by_dict = api.load_dataset({"name": "sciq", "path": sciq}, split="test")
    assert len(by_dict) == 40 and by_dict == api.load_dataset(DatasetSpec(name="sciq", path=sciq), "test")
    csv = tmp_path / "mine.jsonl"
    csv.write_text(
        "\n".join(json.dumps({"question": f"q{i}", "answer": "a", "label": i % 2}) for i in range(4))
    )
    rows = api.load_dataset(csv, split="train")
    assert [e.label for e in rows] == [0, 1, 0, 1]
    assert len(api.load_dataset("sciq", split="test")) == 1000  # the registry name: the shared files


def test_run_is_w2sg_run(tmp_path: Path) -> None:
    """`api.run` on a dict makes the folder `w2sg run` on the same YAML loads (nothing reruns)."""
    from test_pipeline import small

    from oversight.experiments.run.results import PipelineResult

    fields = small(tmp_path)
    fields.update(protocols={"blind": fields["protocols"]["blind"]}, ensembles=[], aggregate=[])
    result = api.run(fields)
    assert isinstance(result, PipelineResult) and [s.source for s in result.sources] == ["weak", "blind"]
    done = tmp_path / "runs" / result.run_id / "results.json"
    stamp = done.stat().st_mtime_ns
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(fields, sort_keys=False))  # key order is part of a config
    shown = CliRunner().invoke(app, ["run", str(path)], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    assert f"{result.run_id}/results.md" in shown.output.replace("\n", "")
    assert done.stat().st_mtime_ns == stamp
