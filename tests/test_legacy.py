"""Stores, run folders and ids written by the code before issue 29's refactor still load and keep
their ids: fixtures in tests/fixtures/legacy/, made once at 9726a90 by its frozen make_legacy.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from oversight.experiments.grid.config import GridConfig
from oversight.experiments.ladder.config import LadderConfig
from oversight.experiments.run.config import RunConfig
from oversight.experiments.run.results import PipelineResult
from oversight.experiments.tournament.config import TournamentConfig
from oversight.labelling.label import LabelConfig, selection
from oversight.labelling.store import LabelStore
from w2sg.experiment import W2SGConfig
from w2sg.run_folder import load_complete

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
ROOT = Path(__file__).resolve().parents[1]
IDS: dict[str, str] = json.loads((LEGACY / "ids.json").read_text())
FP = "fixture-fp"


def label_hash(raw: dict) -> str:
    return LabelConfig.model_validate(raw).config_hash(FP)


#: config file prefix → the id today's classes give it (make_legacy.py computed the same at 9726a90)
IDENTITY = {
    "run-": lambda raw: RunConfig.model_validate(raw).run_id(FP),
    "w2sg-": lambda raw: W2SGConfig.model_validate(raw).run_id(FP),
    "ladder-": lambda raw: LadderConfig.model_validate(raw).run_id(FP),
    "tournament-": lambda raw: TournamentConfig.model_validate(raw).run_id(FP),
    "label-": label_hash,
    "debate-": lambda raw: label_hash({"graph": {"kind": "debate", **raw}}),
    "interact-": lambda raw: label_hash({"graph": {"kind": "interaction", **raw}}),
    "grid-": lambda raw: ",".join(c.id for c in GridConfig.model_validate(raw).cells()),
}


@pytest.mark.parametrize("name", sorted(k for k in IDS if k.endswith(".yaml")))
def test_shipped_configs_keep_their_ids(name: str) -> None:
    raw = yaml.safe_load((ROOT / "configs" / name).read_text())
    (prefix,) = [p for p in IDENTITY if name.startswith(p)]
    assert IDENTITY[prefix](raw) == IDS[name]


def test_configs_of_every_old_shim_keep_their_ids() -> None:
    shims = json.loads((LEGACY / "shim_configs.json").read_text())  # make_legacy.py's LABEL_EXTRA
    for key, raw in shims.items():
        assert LabelConfig.model_validate(raw).config_hash(FP) == IDS[f"label:{key}"], key
    demo = yaml.safe_load((ROOT / "configs/run-demo.yaml").read_text())
    sciq = yaml.safe_load((ROOT / "configs/w2sg-sciq.yaml").read_text())
    assert RunConfig.model_validate({**demo, "seeds": [0, 1]}).run_id(FP) == IDS["run-demo+seeds"]
    dev = {**demo, "sizes": {**demo.get("sizes", {}), "dev": 50}}
    assert RunConfig.model_validate(dev).run_id(FP) == IDS["run-demo+dev"]
    drop = {**demo, "on_failure": "drop", "concurrency": 3}
    assert RunConfig.model_validate(drop).run_id(FP) == IDS["run-demo+drop+conc"]
    assert W2SGConfig.model_validate({**sciq, "seed": 1}).run_id(FP) == IDS["w2sg-sciq+seed1"]
    icl = {**sciq, "icl": {"model": "embedded/smollm2", "k": 2}}
    assert W2SGConfig.model_validate(icl).run_id(FP) == IDS["w2sg-sciq+icl"]


def test_an_old_store_loads_and_its_labels_are_found(tmp_path: Path) -> None:
    shutil.copytree(LEGACY / "store", tmp_path / "store")
    raw = yaml.safe_load((tmp_path / "store" / "label.yaml").read_text())
    cfg = LabelConfig.model_validate({**raw, "store": str(tmp_path / "store" / "labels.sqlite")})
    rows, _, chash = selection(cfg)
    assert chash == "565bd4f8b16b"  # what `w2sg label` printed when it wrote the store
    store = LabelStore(cfg.store)
    try:
        got = store.p_true(cfg.protocol, chash)
        assert set(got) == {e.id for e in rows} and len(got) == 6
        assert set(got.values()) <= {0.8, 0.3}
        assert all(r.record["config_hash"] == chash for r in store.rows(cfg.protocol, chash))
    finally:
        store.close()


def test_an_old_run_folder_loads_and_keeps_its_id() -> None:
    (run_dir,) = (LEGACY / "run").iterdir()
    result = load_complete(run_dir, PipelineResult)
    assert result is not None and result.run_id == run_dir.name
    recorded = json.loads((run_dir / "config.json").read_text())
    # The recorded dump names every dataset field, None ones included, which a config file does not
    # (that validator wants one of name / path / hub): the fields that are set are the dataset.
    config = recorded["config"]
    dataset = {k: v for k, v in config["dataset"].items() if v not in (None, {}, [])}
    cfg = RunConfig.model_validate({**config, "dataset": dataset})
    assert cfg.run_id(recorded["data"]["fingerprint"]) == run_dir.name


def test_a_new_field_at_its_neutral_value_keeps_every_id() -> None:
    """The identity rule a new field follows (w2sg.identity): declared neutral on its class, it
    leaves every id as it was at that value, at any depth, and enters the id away from it."""
    from typing import Any, ClassVar

    from pydantic import BaseModel

    from w2sg.identity import run_id

    class Old(BaseModel):
        a: int = 1

    class New(Old):
        b: int | None = None
        ID_NEUTRAL: ClassVar[dict[str, Any]] = {"b": None}

    class Outer(BaseModel):
        parts: dict[str, Old]

    assert run_id("x", New(), "fp") == run_id("x", Old(), "fp") != run_id("x", New(b=2), "fp")
    nested_new, nested_old = Outer(parts={"p": New()}), Outer(parts={"p": Old()})
    assert run_id("x", nested_new, "fp") == run_id("x", nested_old, "fp")
