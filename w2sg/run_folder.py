"""A run folder's lifecycle, shared by every experiment runner: `open_run` (its id from the config
and the data, loaded if complete, else started with its config and data recorded), then
`mark_complete`: `results.json`, written last and atomically, so its presence means every other
output of the run is there."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from w2sg.data import Example, data_info, fingerprint

log = logging.getLogger(__name__)
R = TypeVar("R", bound=BaseModel)
DONE = "results.json"


def open_run(
    cfg: Any, splits: dict[str, list[Example]], cls: type[R], force: bool = False
) -> tuple[str, Path, R | None]:
    """The first half of every run's lifecycle: its id (`cfg.run_id` of the data's fingerprint)
    and folder under `cfg.out_dir`; the finished result when the folder is complete (and not
    `force`), else None and the folder started (config and data recorded)."""
    fp = fingerprint(splits)
    rid = cfg.run_id(fp)
    run_dir = cfg.out_dir / rid
    if (finished := load_complete(run_dir, cls, force)) is not None:
        return rid, run_dir, finished
    start_run(run_dir, cfg, data_info(splits, fp))
    return rid, run_dir, None


def load_complete(run_dir: Path, cls: type[R], force: bool = False) -> R | None:
    """The finished result of `run_dir`, or None when it is not complete or `force` is set."""
    done = run_dir / DONE
    if force or not done.exists():
        return None
    log.info("%s is complete; loading it (use --force to rerun)", run_dir)
    try:
        return cls.model_validate_json(done.read_bytes())
    except ValidationError as e:  # cut short, edited by hand, or written by another version
        why = e.errors()[0]["msg"] if e.errors() else str(e)
        raise ValueError(
            f"{done}: not a finished result this version can read ({why}); rerun with --force to "
            "compute the run again (it replaces the file)"
        ) from None


def is_main_process() -> bool:
    """False in every process but the first of a `torchrun` / `accelerate launch` group: each
    runs the whole experiment (DDP keeps their models equal), and only the first writes files."""
    return os.environ.get("RANK", "0") == "0"


def wait_for_main() -> None:
    """Under `torchrun` / `accelerate launch`, every process waits here until all arrive, so none
    goes on to read a file the first has not finished writing. Alone: returns at once."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def start_run(run_dir: Path, cfg: BaseModel, data: dict[str, Any]) -> None:
    """Create the folder and record the config that produced it and the data it ran on."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if not is_main_process():
        return
    record = {"config": cfg.model_dump(mode="json"), "data": data}
    (run_dir / "config.json").write_text(json.dumps(record, indent=2))


def mark_complete(run_dir: Path, result: BaseModel, name: str = DONE) -> None:
    """Write `name` (`results.json`) through a temporary name: a killed run never looks complete."""
    write_atomic(run_dir / name, result.model_dump_json(indent=2))


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary name: a killed run never leaves a file that looks whole."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.rename(path)
