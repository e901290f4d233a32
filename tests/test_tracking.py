"""Training curves (w2sg.tracking): every step's loss and lr and every evaluation's val accuracy
reach the tracker; a run writes TensorBoard event files, an offline wandb run and curves.png, read
back here (no network); tracking changes no run id."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from test_seeds import tiny_config
from test_w2sg_train import synthetic_rows

from agents import load_config
from agents.names import resolve_model_path
from w2sg.data import label_source
from w2sg.experiment import W2SGConfig, run_experiment
from w2sg.models import FeatureHead
from w2sg.tracking import TrackingConfig, WandbConfig
from w2sg.train import TrainConfig, lr_at, train

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


class Recorder:
    """A Tracker that keeps what it is given."""

    def __init__(self) -> None:
        self.logged: list[tuple[str, int, dict[str, float]]] = []

    def log(self, model: str, step: int, metrics: Mapping[str, float]) -> None:
        self.logged.append((model, step, dict(metrics)))

    def summary(self, metrics: Mapping[str, float], figures: Mapping[str, Path] = {}) -> None:
        pass

    def close(self) -> None:
        pass


def test_train_logs_every_steps_loss_and_lr_and_each_evaluation() -> None:
    tr, f1 = synthetic_rows(100, 0)
    va, f2 = synthetic_rows(40, 1)
    model = FeatureHead({**f1, **f2}, [e.id for e in tr])
    cfg = TrainConfig(lr=1e-2, epochs=2, batch_size=16, eval_every=5, warmup_frac=0.2, device="cpu")
    rec = Recorder()
    res = train(model, tr, label_source(tr, "gold"), va, label_source(va, "gold"), cfg, tracker=rec, name="m")
    steps = [(s, m) for name, s, m in rec.logged if name == "m" and "loss" in m]
    assert [s for s, _ in steps] == list(range(1, res.steps + 1))  # every step, in order
    # the lr each step used: the schedule's (warm-up, then cosine), from the first step
    assert [m["lr"] for _, m in steps] == pytest.approx(
        [1e-2 * lr_at(s - 1, res.steps, cfg) for s, _ in steps]
    )
    evals = [(s, m["val_accuracy"]) for _, s, m in rec.logged if "val_accuracy" in m]
    assert evals == [(s, acc) for s, _, acc in res.history]
    # the history's loss is the mean of the steps logged since the evaluation before
    last = 0
    for s, loss, _ in res.history:
        assert loss == pytest.approx(sum(m["loss"] for t, m in steps if last < t <= s) / (s - last), rel=1e-5)
        last = s


def wandb_records(path: Path) -> list[object]:
    """The records of an offline wandb run's .wandb file: a LevelDB-style log (32 KiB blocks of
    chunks with 7-byte headers: crc, length, type FULL 1 / FIRST 2 / MIDDLE 3 / LAST 4) after a
    7-byte file header."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, buf, out = path.read_bytes(), 7, b"", []
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        if left < 7 or kind == 0:  # a block's tail padding
            pos += left
            continue
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
            buf = b""
    return out


def test_a_run_writes_curves_tensorboard_events_and_an_offline_wandb_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracking = TrackingConfig(tensorboard=True, wandb=WandbConfig(project="t", dir=tmp_path / "wb"))
    cfg = tiny_config(tmp_path, tracking=tracking, label_sources=["weak"])
    result = run_experiment(cfg, resolve=resolve_model_path)
    run = tmp_path / "runs" / result.run_id
    assert (run / "curves.png").read_bytes().startswith(PNG)

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    models = ["weak_teacher_xent", "ceiling_xent", "student_on_weak_xent"]
    for m in models:
        assert {f"{m}/loss", f"{m}/lr", f"{m}/val_accuracy"} <= tags
        steps = [e.step for e in events.Scalars(f"{m}/loss")]
        assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2
    assert {"summary/ceiling/accuracy", "summary/student_weak_xent/pgr"} <= tags
    assert events.Tags()["images"] == ["curves"] and "config/text_summary" in events.Tags()["tensors"]

    (log,) = (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    history = [
        {i.key or "/".join(i.nested_key): i.value_json for i in r.history.item}
        for r in wandb_records(log)
        if r.HasField("history")
    ]
    for m in models:
        logged = [int(h[f"{m}/step"]) for h in history if f"{m}/loss" in h]
        assert logged == sorted(logged) and len(logged) >= 2
        assert any(f"{m}/val_accuracy" in h for h in history)


def test_curves_png_is_written_without_tracking(tmp_path: Path) -> None:
    result = run_experiment(tiny_config(tmp_path, label_sources=["weak"]), resolve=resolve_model_path)
    run = tmp_path / "runs" / result.run_id
    assert (run / "curves.png").read_bytes().startswith(PNG)
    assert not (run / "tensorboard").exists() and not (run / "wandb").exists()


@pytest.mark.parametrize("config", ["w2sg-sciq.yaml", "run-demo.yaml"])
def test_tracking_changes_no_run_id(tmp_path: Path, config: str) -> None:
    from oversight.experiments.run.config import RunConfig

    cls = RunConfig if config.startswith("run-") else W2SGConfig
    plain = load_config(ROOT / "configs" / config, cls)
    tracked = load_config(
        ROOT / "configs" / config,
        cls,
        overrides=["tracking.tensorboard=true", "tracking.wandb={project: p, mode: offline}"],
    )
    assert tracked.tracking.tensorboard is True and tracked.tracking.wandb is not None
    assert tracked.run_id("fp") == plain.run_id("fp")


def test_tracking_config_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match="tensorbord"):
        TrackingConfig.model_validate({"tensorbord": True})
    with pytest.raises(ValueError, match="mode"):
        WandbConfig.model_validate({"mode": "cloud"})


def test_track_flag_is_the_set_of_tracking() -> None:
    from oversight.cli.app import with_tracking

    sets = with_tracking(["name=x"], ["tensorboard", "wandb"])
    cfg = load_config(ROOT / "configs" / "w2sg-sciq.yaml", W2SGConfig, overrides=sets)
    assert cfg.name == "x" and cfg.tracking.tensorboard is True
    assert cfg.tracking.wandb is not None and cfg.tracking.wandb.mode == "offline"
    with pytest.raises(ValueError, match="--track tensorbord: choose from tensorboard, wandb"):
        with_tracking(None, ["tensorbord"])


def test_a_trained_judge_logs_its_curves_and_writes_curves_png(tmp_path: Path) -> None:
    import asyncio

    from agents import wrap
    from agents.backends.scripted import ScriptedBackend
    from graphs.debate import DebateConfig
    from oversight.cli.app import tracking_of
    from oversight.labelling.judges import collect_transcripts, train_judge
    from w2sg.data import split_by_question
    from w2sg.datasets import load

    assert tracking_of(["tensorboard"]) == TrackingConfig(tensorboard=True)
    rows = split_by_question(load("sciq", "test"), {"judge": 10}, seed=1)["judge"]
    cfg = DebateConfig(protocol="simultaneous", rounds=1, judge_kind="trained")
    debater = wrap(ScriptedBackend("scripted/plain", reply_fn=lambda m, p: "I argue my side."))
    states = asyncio.run(collect_transcripts(cfg, debater, rows))
    tcfg = TrainConfig(lr=1e-4, epochs=1, batch_size=8, eval_every=2, device="cpu")
    rec = Recorder()
    base = resolve_model_path("embedded/minilm")
    train_judge(cfg, rows, states, base_path=base, out_dir=tmp_path / "j", train_cfg=tcfg, tracker=rec)
    assert (tmp_path / "j" / "curves.png").read_bytes().startswith(PNG)
    assert {name for name, _, _ in rec.logged} == {"simultaneous judge"}
    assert any("val_accuracy" in m for _, _, m in rec.logged)


def test_a_missing_extra_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from w2sg.tracking import open_tracker

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: its import fails
    with pytest.raises(ImportError, match=r"tracking needs wandb: pip install 'w2sg-oversight\[tracking\]'"):
        open_tracker(TrackingConfig(wandb=WandbConfig()), tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-opened
