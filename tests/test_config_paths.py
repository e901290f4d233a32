"""A relative path written in a config is relative to the config file's folder, not to the working
directory; defaults stay relative to the working directory; model names are never rebased."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from cli import ROOT, SHIPPED_CONFIGS, config_class, w2sg
from pydantic import BaseModel

from agents import load_config
from agents.config import rebase_paths
from oversight.experiments.config import ExperimentConfig


def write(folder: Path, text: str, name: str = "cfg.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def test_written_paths_resolve_beside_the_config(tmp_path: Path) -> None:
    from oversight.labelling.label import LabelConfig

    cfg = write(
        tmp_path / "cfgs",
        """
store: labels.sqlite
dataset: {path: ../data}
models:
  deb:
    name: scripted/deb
    scripted: {table: tables/deb.jsonl}
    cache: {path: cache/deb.sqlite}
  judge: {name: hf/rel/judge-dir}
graph: {kind: debate, protocol: consultancy, debater: deb, judge: judge}
""",
    )
    c = load_config(cfg, LabelConfig)
    assert c.store == tmp_path / "cfgs" / "labels.sqlite"
    assert c.dataset.path == tmp_path / "data"  # `..` is folded: the path reads as it points
    assert c.models["deb"].cache.path == tmp_path / "cfgs" / "cache" / "deb.sqlite"
    assert c.models["deb"].scripted.table == tmp_path / "cfgs" / "tables" / "deb.jsonl"
    assert c.models["judge"].name == "hf/rel/judge-dir"  # a model name (str) is left alone


def test_defaults_and_absolute_paths_are_left_alone(tmp_path: Path) -> None:
    from oversight.experiments.run.config import RunConfig
    from oversight.labelling.label import LabelConfig

    c = load_config(
        write(tmp_path / "a", f"store: {tmp_path / 'abs.sqlite'}\ngraph: {{kind: debate}}\n"), LabelConfig
    )
    assert c.store == tmp_path / "abs.sqlite"
    c = load_config(write(tmp_path / "b", "graph: {kind: debate}\n"), LabelConfig)
    assert c.store == Path("runs/labels.sqlite")  # a default: relative to the working directory
    r = load_config(
        write(
            tmp_path / "c",
            "out_dir: out\nprotocols: {}\nweak: {kind: features, path: embedded/minilm}\n"
            "strong: {kind: lm_head, path: Qwen/Qwen2.5-1.5B}\n",
        ),
        RunConfig,
    )
    assert r.out_dir == tmp_path / "c" / "out" and r.cache_dir == Path("runs/cache")
    assert r.weak.path == "embedded/minilm" and r.strong.path == "Qwen/Qwen2.5-1.5B"
    assert r.judge_training.base == "embedded/minilm"


def test_a_relative_config_path_gives_relative_looking_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "configs", "out_dir: ../runs/x\nmodels: {}\n")
    assert load_config("configs/cfg.yaml", ExperimentConfig).out_dir == Path("runs/x")
    assert load_config(Path("configs/cfg.yaml"), ExperimentConfig).dataset == ExperimentConfig().dataset


class Leaf(BaseModel):
    path: Path
    other: Path = Path("default")


class Tree(BaseModel):
    leaves: list[Leaf] = []
    named: dict[str, Leaf] = {}
    paths: list[Path] = []
    pair: tuple[Path, str] | None = None
    name: str = "x/y"


def test_rebase_walks_lists_dicts_and_nested_models() -> None:
    shared = Leaf(path=Path("s"))
    t = Tree.model_validate(
        {
            "leaves": [{"path": "a"}, {"path": "/abs"}],
            "named": {"k": {"path": "b", "other": "c"}},
            "paths": ["d", "/e"],
            "pair": ["f", "g"],
            "name": "n/m",
        }
    )
    t.leaves.append(shared)
    t.named["again"] = shared  # one object reachable twice is rebased once
    rebase_paths(t, Path("/base"))
    assert [leaf.path for leaf in t.leaves] == [Path("/base/a"), Path("/abs"), Path("/base/s")]
    assert t.leaves[0].other == Path("default")  # not written: stays as the default
    assert t.named["k"].path == Path("/base/b") and t.named["k"].other == Path("/base/c")
    assert t.paths == [Path("/base/d"), Path("/e")] and t.pair == (Path("/base/f"), "g")
    assert t.name == "n/m" and t.named["again"].path == Path("/base/s")


def _written_paths(value: object) -> list[Path]:
    """Every Path value of fields set in the file (what load_config rebased)."""
    if isinstance(value, Path):
        return [value]
    if isinstance(value, BaseModel):
        return [p for name in value.model_fields_set for p in _written_paths(getattr(value, name))]
    if isinstance(value, dict):
        return [p for v in value.values() for p in _written_paths(v)]
    if isinstance(value, list | tuple):
        return [p for v in value for p in _written_paths(v)]
    return []


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_shipped_config_paths_point_into_the_checkouts_runs(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped configs write their paths relative to configs/ (`../runs/...`): from the repo
    root they point where they did when paths were read against the working directory."""
    kind = config_class(path)
    # A config may name another shipped config (a leaderboard's `base:`), beside it in configs/.
    for p in _written_paths(load_config(path, kind)):
        assert p.is_relative_to(ROOT / "runs") or p.parent == ROOT / "configs", p
    monkeypatch.chdir(ROOT)  # as the README runs them: `w2sg label configs/label-debate.yaml`
    for p in _written_paths(load_config(path.relative_to(ROOT), kind)):
        assert p.parts[0] in ("runs", "configs"), p


def test_shipped_label_configs_keep_their_store_and_cache() -> None:
    from oversight.labelling.label import LabelConfig

    c = load_config(ROOT / "configs" / "label-debate.yaml", LabelConfig)
    assert c.store == ROOT / "runs" / "labels.sqlite"
    assert c.models["debater"].cache.path == ROOT / "runs" / "cache" / "smollm2-debate.sqlite"
    assert c.models["judge"].name == "classifier/runs/judges/debate-embedded"  # a model name, as it was


def test_cli_label_store_lands_beside_the_config(tmp_path: Path) -> None:
    """Run from the repo root (as tests/cli.py does) with a config elsewhere: the relative store is
    created beside the config, not in the working directory."""
    name = f"rel-{uuid.uuid4().hex[:8]}.sqlite"
    cfg = write(
        tmp_path / "elsewhere",
        f"questions: 2\nconcurrency: 2\nstore: {name}\n"
        "graph: {kind: debate, protocol: consultancy, rounds: 1, debater: scripted, judge: scripted}\n",
    )
    try:
        out = w2sg("label", str(cfg))
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "elsewhere" / name).is_file()
        assert not (ROOT / name).exists()
    finally:
        for leftover in ROOT.glob(f"{name}*"):  # what the old behaviour would have created
            leftover.unlink()
