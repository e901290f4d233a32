"""Run a grid's cells (all, or one shard's) and merge finished cells into one report.

A cell is a folder `<grid>/cells/<id>/` (`id`: a hash of the cell's config): `cell.json` says
what it is, `labels.sqlite` holds its labels as they are made (so a killed cell resumes where it
stopped), and `result.json`, written last through a temporary name, marks it finished: a finished
cell is never run again. Cells share nothing, so shards can run anywhere the folder is visible.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from oversight.experiments.grid.config import Cell, GridConfig
from w2sg.data import Example
from w2sg.metrics import Estimate, correct
from w2sg.progress import track
from w2sg.run_folder import mark_complete

log = logging.getLogger(__name__)
RESULT = "result.json"


class CellResult(BaseModel):
    id: str
    axes: dict[str, str]
    kind: str
    label_accuracy: Estimate
    ece: float
    pgr: Estimate | None = Field(None, description="run cells: the student's PGR on these labels")
    student_accuracy: Estimate | None = None
    tokens_per_label: float | None = None
    seconds: float = Field(description="wall time of the call that finished the cell")
    # Optional, so result.json files written before paired comparisons existed still load.
    outcomes: dict[str, tuple[str, float]] | None = Field(
        None,
        description="row id → (question id, 1.0 if the label sided with gold else 0.0) on the rows the "
        "label accuracy is of: what the report's paired comparisons read",
    )


def cell_dir(cfg: GridConfig, cell: Cell) -> Path:
    return cfg.grid_dir / "cells" / cell.id


def finished(cfg: GridConfig, cell: Cell) -> CellResult | None:
    path = cell_dir(cfg, cell) / RESULT
    return CellResult.model_validate_json(path.read_text()) if path.exists() else None


def run_cell(cfg: GridConfig, cell: Cell) -> CellResult:
    """Run one cell to its result (its labels resume from the cell's store)."""
    folder = cell_dir(cfg, cell)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cell.json").write_text(json.dumps(cell.model_dump(mode="json"), indent=2))
    t0 = time.perf_counter()
    result = _run_label(cell, folder) if cell.kind == "label" else _run_train(cell, folder)
    result["seconds"] = time.perf_counter() - t0
    out = CellResult(id=cell.id, axes=cell.axes, kind=cell.kind, **result)
    mark_complete(folder, out, RESULT)  # a killed cell never looks finished
    return out


def outcomes(rows: list[Example], p_true: Mapping[str, float]) -> dict[str, tuple[str, float]]:
    """Per labelled row: its question and whether its label sided with gold (`w2sg.metrics.correct`)."""
    kept = [e for e in rows if e.id in p_true]
    ok = correct([p_true[e.id] for e in kept], [e.label for e in kept])
    return {e.id: (e.qid, float(v)) for e, v in zip(kept, ok, strict=True)}


def _run_label(cell: Cell, folder: Path) -> dict[str, object]:
    from oversight.labelling.label import LabelConfig, label, selection
    from oversight.labelling.store import LabelStore

    cfg = LabelConfig.model_validate({**cell.config, "store": str(folder / "labels.sqlite")})
    run = asyncio.run(label(cfg))
    if run.failed or run.quality is None:
        axes = ", ".join(f"{k}={v}" for k, v in cell.axes.items() if v != "-")
        raise RuntimeError(f"cell {cell.id} ({axes}): {run.failed} rows failed")
    rows, _, chash = selection(cfg)
    store = LabelStore(cfg.store)
    try:
        got = store.p_true(run.protocol, chash)
    finally:
        store.close()
    return {
        "label_accuracy": run.quality.accuracy,
        "outcomes": outcomes(rows, got),
        "ece": run.quality.ece,
        # tokens of the debates run by this call (a resumed cell counts only its own)
        "tokens_per_label": run.tokens / run.labelled if run.labelled else None,
    }


def _run_train(cell: Cell, folder: Path) -> dict[str, object]:
    from agents.names import resolve_model_path
    from oversight.experiments.run.config import RunConfig
    from oversight.experiments.run.runner import prepare_run_splits, run_pipeline

    cfg = RunConfig.model_validate({**cell.config, "out_dir": str(folder)})
    r = run_pipeline(cfg, resolve=resolve_model_path)
    (source,) = cfg.protocols
    rep = next(s for s in r.sources if s.source == source)
    student = next(s for s in r.experiment.students if s.source == source)
    z = np.load(folder / r.run_id / "labels.npz")  # the strong split's labels: what raw accuracy is of
    p_true = dict(zip(z["strong__ids"].tolist(), z[f"{source}__strong"].tolist(), strict=True))
    return {
        "label_accuracy": rep.raw.accuracy,
        "outcomes": outcomes(prepare_run_splits(cfg)[0]["strong"], p_true),
        "ece": rep.raw.ece,
        "pgr": student.pgr,
        "student_accuracy": student.accuracy,
        "tokens_per_label": rep.tokens_per_label.value if rep.tokens_per_label else None,
    }


def run_grid(cfg: GridConfig, cells: list[Cell]) -> tuple[int, int]:
    """Run every given cell not yet finished; (cells run now, cells already finished)."""
    todo = [c for c in cells if finished(cfg, c) is None]
    progress = track(f"grid {cfg.name}", len(cells), unit="cells", start=len(cells) - len(todo))
    failed: list[str] = []
    for cell in todo:
        try:
            run_cell(cfg, cell)
        except RuntimeError as e:  # rows that failed after their retries: the other cells still run
            failed.append(str(e))
        progress.advance()
    progress.close(failed=bool(failed))
    if failed:
        raise RuntimeError(f"{len(failed)} cells did not finish; rerun to retry them: " + "; ".join(failed))
    return len(todo), len(cells) - len(todo)


class GridResult(BaseModel):
    name: str
    cells: list[CellResult]
    missing: list[dict[str, str]] = Field(description="axes of the cells not finished yet")


def merge(cfg: GridConfig) -> GridResult:
    """Every finished cell of the grid, in the grid's order, and the axes of those missing."""
    done, missing = [], []
    for cell in cfg.cells():
        r = finished(cfg, cell)
        if r is None:
            missing.append(cell.axes)
        else:
            done.append(r)
    return GridResult(name=cfg.name, cells=done, missing=missing)
