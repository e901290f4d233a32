"""Training curves: TensorBoard / Weights & Biases tracking of every model a run trains, and the
`curves.png` of each run folder.

`tracking:` on a config that trains (`TrackingConfig`) picks the trackers; `open_tracker` builds
one `Tracker` for a run folder (several fan out, none is a no-op). `w2sg.train.train` logs each
model under its name in the run (weak teacher, ceiling, student on <source> [<loss>], ...): the
loss and lr of every step and the val accuracy of every evaluation. Tracking changes no result,
so it is in the configs' ID_EXCLUDE (`w2sg.identity`). tensorboard and wandb are the optional
extra `tracking`, imported only when asked for.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from w2sg.config import Config

log = logging.getLogger(__name__)

#: (step, train loss, val accuracy) per evaluation: `w2sg.train.TrainResult.history`.
History = Sequence[tuple[int, float, float]]


class WandbConfig(Config):
    project: str = "w2sg"
    mode: Literal["offline", "online", "disabled"] = Field(
        "offline", description="offline writes the run under `dir` (`wandb sync` uploads it later)"
    )
    dir: Path | None = Field(None, description="where wandb writes; None: the run folder")


class TrackingConfig(Config):
    """Where the training curves of a run go, besides its `curves.png` (always written)."""

    tensorboard: bool | Path = Field(
        False, description="true: event files in <run folder>/tensorboard; a path: under it, per run id"
    )
    wandb: WandbConfig | None = Field(None, description="a wandb run per run folder (offline by default)")


def tracking_field() -> Any:
    """The `tracking:` field of every config that trains."""
    return Field(
        default_factory=TrackingConfig,
        description="TensorBoard / wandb curves of every model trained (w2sg.tracking); changes no result",
    )


class Tracker(Protocol):
    def log(self, model: str, step: int, metrics: Mapping[str, float]) -> None:
        """Scalars of one model at one of its steps (each model counts its own steps)."""

    def summary(self, metrics: Mapping[str, float], figures: Mapping[str, Path] = {}) -> None:
        """The run's final figures, and PNG images (e.g. curves.png) by name."""

    def close(self) -> None: ...


class Histories(dict[str, History]):
    """The training histories of a run's models by name (curves.png is drawn from them)."""

    def name(self, base: str) -> str:
        """`base`, numbered from the second model of that name on (`#2`: an ensemble's members)."""
        n = sum(1 for k in self if k == base or k.startswith(f"{base} #"))
        return base if n == 0 else f"{base} #{n + 1}"


def tag(model: str) -> str:
    """A model's name as a metric prefix: `student on weak (s2s) [xent]` → `student_on_weak_s2s_xent`."""
    return re.sub(r"[^0-9A-Za-z.]+", "_", model).strip("_")


class NullTracker:
    def log(self, model: str, step: int, metrics: Mapping[str, float]) -> None:
        pass

    def summary(self, metrics: Mapping[str, float], figures: Mapping[str, Path] = {}) -> None:
        pass

    def close(self) -> None:
        pass


def _extra(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"tracking needs {module.split('.')[0]}: pip install 'w2sg-oversight[tracking]' ({e})"
        ) from None


class TensorBoardTracker:
    """Event files in `logdir`: `<model>/<metric>` scalars, `summary/<metric>`, the config as text."""

    def __init__(self, logdir: Path, config: Mapping[str, Any]):
        _extra("tensorboard")
        writer = _extra("torch.utils.tensorboard").SummaryWriter
        self.w = writer(log_dir=str(logdir))
        self.w.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```")

    def log(self, model: str, step: int, metrics: Mapping[str, float]) -> None:
        for k, v in metrics.items():
            self.w.add_scalar(f"{tag(model)}/{k}", v, step)

    def summary(self, metrics: Mapping[str, float], figures: Mapping[str, Path] = {}) -> None:
        for k, v in metrics.items():
            self.w.add_scalar(f"summary/{k}", v, 0)
        for name, path in figures.items():
            self.w.add_image(name, _png(path), 0, dataformats="HWC")

    def close(self) -> None:
        self.w.close()


def _png(path: Path) -> Any:
    import matplotlib.image

    return (matplotlib.image.imread(path)[..., :3] * 255).astype("uint8")


class WandbTracker:
    """One wandb run: `<model>/<metric>` against the model's own `<model>/step`; summary keys in the
    run summary; the config as the run's config. Offline by default; it never asks for a key."""

    def __init__(self, cfg: WandbConfig, where: Path, name: str, config: Mapping[str, Any]):
        wandb = _extra("wandb")
        self.wandb, self.models = wandb, set[str]()
        where.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=cfg.project,
            name=name,
            mode=cfg.mode,
            dir=str(where),
            config=json.loads(json.dumps(config, default=str)),
            reinit="create_new",  # one run per run folder, even within one process
            settings=wandb.Settings(silent=True, console="off"),
        )

    def log(self, model: str, step: int, metrics: Mapping[str, float]) -> None:
        t = tag(model)
        if t not in self.models:  # each model's curves against its own steps
            self.models.add(t)
            self.run.define_metric(f"{t}/step")
            self.run.define_metric(f"{t}/*", step_metric=f"{t}/step")
        self.run.log({f"{t}/step": step, **{f"{t}/{k}": v for k, v in metrics.items()}})

    def summary(self, metrics: Mapping[str, float], figures: Mapping[str, Path] = {}) -> None:
        for k, v in metrics.items():
            self.run.summary[f"summary/{k}"] = v
        if figures:
            self.run.log({name: self.wandb.Image(str(path)) for name, path in figures.items()})

    def close(self) -> None:
        self.run.finish()


class Trackers:
    """Several trackers as one."""

    def __init__(self, parts: Sequence[Tracker]):
        self.parts = list(parts)

    def log(self, model: str, step: int, metrics: Mapping[str, float]) -> None:
        for p in self.parts:
            p.log(model, step, metrics)

    def summary(self, metrics: Mapping[str, float], figures: Mapping[str, Path] = {}) -> None:
        for p in self.parts:
            p.summary(metrics, figures)

    def close(self) -> None:
        for p in self.parts:
            p.close()


def open_tracker(
    cfg: TrackingConfig, run_dir: Path, config: BaseModel | None = None, name: str | None = None
) -> Tracker:
    """The trackers `cfg` asks for, for the run in `run_dir`, named `name` (default: the folder's
    name, its run id); `config` is recorded with the curves."""
    name = name or run_dir.name
    record = {} if config is None else config.model_dump(mode="json")
    parts: list[Tracker] = []
    if cfg.tensorboard is not False:
        logdir = run_dir / "tensorboard" if cfg.tensorboard is True else Path(cfg.tensorboard) / name
        parts.append(TensorBoardTracker(logdir, record))
        log.info("TensorBoard: tensorboard --logdir %s", logdir)
    if cfg.wandb is not None and cfg.wandb.mode != "disabled":
        parts.append(WandbTracker(cfg.wandb, cfg.wandb.dir or run_dir, name, record))
    return Trackers(parts) if parts else NullTracker()


@contextmanager
def tracked(
    cfg: TrackingConfig, run_dir: Path, config: BaseModel, name: str | None = None
) -> Iterator[Tracker]:
    """`open_tracker` on the main process only (under torchrun the others train the same models),
    closed however the run ends."""
    from w2sg.run_folder import is_main_process

    tracker = open_tracker(cfg, run_dir, config, name=name) if is_main_process() else NullTracker()
    try:
        yield tracker
    finally:
        tracker.close()


def write_curves(histories: Mapping[str, History], path: Path) -> Path | None:
    """curves.png: one panel per model, its train loss and val accuracy against its steps (from the
    histories `train` records). None when no model trained."""
    if not histories:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(histories)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (name, hist) in zip(axes.flat, histories.items(), strict=False):
        steps = [h[0] for h in hist]
        ax.plot(steps, [h[1] for h in hist], color="tab:blue", marker=".")
        ax.set(title=name, xlabel="step")
        ax.set_ylabel("train loss", color="tab:blue")
        acc = ax.twinx()  # accuracy on its own 0..1 axis: losses have no fixed scale
        acc.plot(steps, [h[2] for h in hist], color="tab:orange", marker=".")
        acc.set_ylim(0, 1)
        acc.set_ylabel("val accuracy", color="tab:orange")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
