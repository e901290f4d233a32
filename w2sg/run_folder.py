"""A run folder's completion marker: `results.json`, written last and atomically, so its presence
means every other output of the run is there. Shared by every experiment runner."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

log = logging.getLogger(__name__)
R = TypeVar("R", bound=BaseModel)
DONE = "results.json"


def load_complete(run_dir: Path, cls: type[R], force: bool = False) -> R | None:
    """The finished result of `run_dir`, or None when it is not complete or `force` is set."""
    done = run_dir / DONE
    if force or not done.exists():
        return None
    log.info("%s is complete; loading it (use --force to rerun)", run_dir)
    return cls.model_validate_json(done.read_text())


def start_run(run_dir: Path, cfg: BaseModel) -> None:
    """Create the folder and record the config that produced it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(cfg.model_dump_json(indent=2))


def mark_complete(run_dir: Path, result: BaseModel) -> None:
    """Write `results.json` through a temporary name: a killed run never looks complete."""
    tmp = run_dir / (DONE + ".tmp")
    tmp.write_text(result.model_dump_json(indent=2))
    tmp.rename(run_dir / DONE)
