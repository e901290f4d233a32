"""Tracking of labelling runs and tournaments (oversight.labelling.tracking): `w2sg label` logs its
progress and label quality, `w2sg tournament` each match-up and the final ratings, to TensorBoard
event files read back here; tracking changes no config hash or run id."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from cli import w2sg
from test_label import config as label_yaml
from test_tournament import tournament_yaml

from agents import load_config
from oversight.experiments.tournament.config import TournamentConfig
from oversight.labelling.label import LabelConfig, label, selection
from oversight.labelling.store import LabelStore
from oversight.labelling.tracking import POINTS, LabelProgress, tracking_dir
from w2sg.tracking import TrackingConfig

ROOT = Path(__file__).resolve().parents[1]
LEGACY = json.loads((ROOT / "tests" / "fixtures" / "legacy" / "ids.json").read_text())
FP = "fixture-fp"  # the data fingerprint ids.json was computed with (make_legacy.py)
TRACKING = {"tensorboard": True, "wandb": {"project": "p", "mode": "offline"}}
PROGRESS = {"rows_done", "rows_failed", "rows_per_s", "tokens", "cost_usd", "mean_p_true", "accuracy"}


def events(logdir: Path):  # type: ignore[no-untyped-def]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return acc


def test_a_label_run_logs_its_progress_and_label_quality(tmp_path: Path) -> None:
    path = label_yaml(tmp_path, "a.sqlite", questions=6)
    priced = "name: scripted/judge\n    price: {input_per_mtok: 1}"  # a cost to log
    path.write_text(path.read_text().replace("name: scripted/judge", priced))
    cfg = load_config(path, LabelConfig, overrides=["tracking.tensorboard=true"])
    run = asyncio.run(label(cfg))
    assert run.labelled == 12 and run.quality is not None
    ev = events(tracking_dir(cfg.store, cfg.protocol, run.config_hash) / "tensorboard")
    tags = set(ev.Tags()["scalars"])
    assert {f"sequential/{k}" for k in PROGRESS} <= tags
    done = ev.Scalars("sequential/rows_done")
    assert [e.step for e in done] == list(range(1, 13)) and [e.value for e in done] == list(range(1, 13))
    assert ev.Scalars("sequential/rows_failed")[-1].value == 0
    assert ev.Scalars("sequential/tokens")[-1].value > 0 and ev.Scalars("sequential/cost_usd")[-1].value > 0
    store = LabelStore(cfg.store)
    got = store.p_true(cfg.protocol, run.config_hash)
    store.close()
    # the last running figures are those of every row: its mean p(true), the printed accuracy
    assert ev.Scalars("sequential/mean_p_true")[-1].value == pytest.approx(sum(got.values()) / 12)
    assert ev.Scalars("sequential/accuracy")[-1].value == pytest.approx(run.quality.accuracy.value)
    summary = {t: ev.Scalars(t)[0].value for t in tags if t.startswith("summary/")}
    assert summary["summary/sequential/labelled"] == 12 and summary["summary/sequential/failed"] == 0
    assert summary["summary/sequential/ece"] == pytest.approx(run.quality.ece)
    assert summary["summary/sequential/brier"] == pytest.approx(run.quality.brier)
    assert summary["summary/sequential/accuracy_lo"] <= summary["summary/sequential/accuracy"]
    # a rerun labels nothing; its summary still comes, its steps start after the stored rows
    again = asyncio.run(label(cfg))
    assert again.already_done == 12 and again.labelled == 0


def test_progress_groups_rows_to_a_bounded_number_of_points() -> None:
    from oversight.labelling.store import LabelRow

    class Steps:
        def __init__(self) -> None:
            self.steps: list[int] = []

        def log(self, model: str, step: int, metrics: object) -> None:
            self.steps.append(step)

    rec = Steps()
    todo = 3 * POINTS + 1
    log = LabelProgress(rec, "blind", start=5, todo=todo)  # type: ignore[arg-type]
    for i in range(todo):
        ok = i % 7 != 0
        row = LabelRow(example_id=str(i), protocol="blind", config_hash="h", status="ok" if ok else "failed")
        log.row(row.model_copy(update={"p_true": 0.9 if ok else None}), 1, {})
    log.flush({})
    log.flush({})  # nothing new: no second point
    assert len(rec.steps) <= POINTS + 1 and rec.steps == sorted(set(rec.steps))
    assert rec.steps[0] == 5 + log.every and rec.steps[-1] == 5 + todo


def test_label_track_flag_writes_event_files(tmp_path: Path) -> None:
    path = label_yaml(tmp_path, "f.sqlite", questions=2)
    out = w2sg("label", str(path), "--track", "tensorboard")
    assert out.returncode == 0, out.stderr
    cfg = load_config(path, LabelConfig)
    chash = selection(cfg)[2]
    assert list((tracking_dir(cfg.store, cfg.protocol, chash) / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("label-*.yaml")))
def test_tracking_changes_no_label_config_hash(name: str) -> None:
    raw = yaml.safe_load((ROOT / "configs" / name).read_text())
    plain = LabelConfig.model_validate(raw)
    tracked = LabelConfig.model_validate({**raw, "tracking": TRACKING})
    assert tracked.tracking == TrackingConfig.model_validate(TRACKING)
    assert tracked.config_hash(FP) == plain.config_hash(FP) == LEGACY[name]


def test_tracking_changes_no_grid_cell_id() -> None:
    from oversight.experiments.grid.config import GridConfig

    raw = yaml.safe_load((ROOT / "configs" / "grid-offline.yaml").read_text())
    tracked = GridConfig.model_validate({**raw, "label": {**raw["label"], "tracking": TRACKING}})
    assert ",".join(c.id for c in tracked.cells()) == LEGACY["grid-offline.yaml"]
    # a run cell's too (its config is a RunConfig, tracking at its default or not)
    run = {k: v for k, v in raw.items() if k != "label"}
    tiny = {"kind": "features", "path": "embedded/tiny-gpt2"}
    models = {"weak": tiny, "strong": tiny}
    plain = GridConfig.model_validate({**run, "run": models}).cells()
    on = GridConfig.model_validate({**run, "run": {**models, "tracking": TRACKING}}).cells()
    assert [c.id for c in on] == [c.id for c in plain]


def test_tracking_changes_no_tournament_run_id() -> None:
    raw = yaml.safe_load((ROOT / "configs" / "tournament-offline.yaml").read_text())
    tracked = TournamentConfig.model_validate({**raw, "tracking": TRACKING})
    assert tracked.run_id(FP) == LEGACY["tournament-offline.yaml"]


def test_a_tournament_logs_each_match_up_and_its_ratings(tmp_path: Path) -> None:
    from oversight.experiments.tournament.runner import run_tournament, schedule

    cfg = load_config(tournament_yaml(tmp_path, questions=2), TournamentConfig)
    cfg = cfg.model_copy(update={"tracking": TrackingConfig(tensorboard=True)})
    result, run_dir, _ = run_tournament(cfg)
    ev = events(run_dir / "tensorboard")
    debates = ev.Scalars("tournament/debates")
    assert [e.step for e in debates] == list(range(1, len(schedule(cfg)) + 1))
    assert debates[-1].value == result.matches
    accuracy = ev.Scalars("tournament/judge_accuracy")[-1].value
    assert accuracy == pytest.approx(result.judge_accuracy["all"].value)
    for p in cfg.debaters:
        assert ev.Scalars(f"summary/rating/{p}")[0].value == pytest.approx(result.rating[p].value)
        assert ev.Scalars(f"summary/elo/{p}")[0].value == pytest.approx(result.elo[p].value)
