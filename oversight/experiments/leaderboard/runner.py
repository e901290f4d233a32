"""Run a leaderboard's cells (all, or one shard's) and merge the finished ones.

A cell is one `w2sg train` run (`run_experiment`, the command's own code path) of the base with
the cell's dataset, seed and methods; its run folder is `<board>/runs/<run id>/`, as `w2sg train`
writes it. `<board>/cells/<cell id>.json` (written last, through a temporary name) marks a cell
finished and names its run: a finished cell is never run again, and a killed one resumes (its run
folder reused when complete). Cells share nothing, so shards can run anywhere the folder is seen.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from oversight.experiments.leaderboard.config import Cell, LeaderboardConfig
from w2sg.metrics import Estimate, percentile_interval, pgr_draws
from w2sg.progress import track
from w2sg.report import regime, seeds_chance
from w2sg.results import VANILLA, ExperimentResult, SeedRun, SeedsStudent, student_key
from w2sg.run_folder import load_complete, mark_complete
from w2sg.seeds import Drawn, aggregate, draw_runs, load_columns, mean_pgr

log = logging.getLogger(__name__)


class CellDone(BaseModel):
    """What a finished cell's marker says: where it is on the axes and the run it made."""

    id: str
    dataset: str
    seed: int
    run_id: str


def marker(cfg: LeaderboardConfig, cell: Cell) -> Path:
    return cfg.board_dir / "cells" / f"{cell.id}.json"


def finished(cfg: LeaderboardConfig, cell: Cell) -> CellDone | None:
    path = marker(cfg, cell)
    return CellDone.model_validate_json(path.read_text()) if path.exists() else None


def run_cell(cfg: LeaderboardConfig, cell: Cell) -> CellDone:
    """One cell's `w2sg train` run, then its marker."""
    from agents.names import resolve_model_path
    from w2sg.experiment import run_experiment

    log.info("leaderboard %s: cell dataset=%s seed=%d", cfg.name, cell.dataset, cell.seed)
    result = run_experiment(cell.config, resolve=resolve_model_path)
    done = CellDone(id=cell.id, dataset=cell.dataset, seed=cell.seed, run_id=result.run_id)
    path = marker(cfg, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    mark_complete(path.parent, done, path.name)  # a killed cell never looks finished
    return done


def run_board(cfg: LeaderboardConfig, cells: list[Cell]) -> tuple[int, int]:
    """Run every given cell not yet finished; (cells run now, cells already finished)."""
    todo = [c for c in cells if finished(cfg, c) is None]
    progress = track(f"leaderboard {cfg.name}", len(cells), unit="cells", start=len(cells) - len(todo))
    for cell in todo:
        run_cell(cfg, cell)
        progress.advance()
    progress.close()
    return len(todo), len(cells) - len(todo)


def finished_cells(cfg: LeaderboardConfig) -> tuple[list[CellDone], list[dict[str, str]]]:
    """The finished cells in the leaderboard's order, and the axes of those not finished."""
    done, missing = [], []
    for cell in cfg.cells():
        if (r := finished(cfg, cell)) is None:
            missing.append(cell.axes)
        else:
            done.append(r)
    return done, missing


class BoardRow(SeedsStudent):
    """One student of the leaderboard (dataset, label source, loss, method) over its seeds: its
    figures as `w2sg.seeds` aggregates them, and its paired difference against vanilla."""

    dataset: str
    seeds: list[int]
    vs_vanilla: Estimate | None = Field(
        None, description="PGR minus vanilla's (same dataset, source, loss), paired over seeds and questions"
    )
    vs_vanilla_auc: Estimate | None = Field(None, description="the same on AUC-PGR")
    regime: str = Field(
        "gap",
        description="w2sg.report.regime of its source's seed-mean floor against the seed-mean ceiling "
        "(or chance): PGR is read only under `gap`",
    )
    rank: int = Field(
        0,
        description="among the methods of its dataset, source and loss (1: best): by PGR under a gap, "
        "by student accuracy where there is no weak-to-strong regime to read PGR in",
    )

    @property
    def reads_pgr(self) -> bool:
        return self.regime == "gap"


class MethodRank(BaseModel):
    """A method over the (dataset, source, loss) groups with a weak-to-strong gap (the only ones
    where PGR measures anything): its mean PGR and how often its paired difference against vanilla
    excludes 0, above or below."""

    method: str
    mean_pgr: float
    groups: int
    above_vanilla: int
    below_vanilla: int


class LeaderboardResult(BaseModel):
    name: str
    n_boot: int
    runs: dict[str, dict[int, str]] = Field(description="dataset → seed → its `w2sg train` run id")
    rows: list[BoardRow]
    ranking: list[MethodRank] = Field(description="methods by mean PGR, best first")
    missing: list[dict[str, str]] = Field(description="axes of the cells not finished yet")


def merge(cfg: LeaderboardConfig) -> LeaderboardResult:
    """Every dataset's finished seeds aggregated (w2sg.seeds), with paired differences against
    vanilla, and the axes of the cells missing. Reads only the cells' run folders, so shards merged
    and one whole run give the same result."""
    done, missing = finished_cells(cfg)
    n_boot = cfg.base_config().n_boot
    runs: dict[str, dict[int, str]] = {}
    for d in done:
        runs.setdefault(d.dataset, {})[d.seed] = d.run_id
    rows = [row for ds, seeds in runs.items() for row in dataset_rows(cfg.runs_dir, ds, seeds, n_boot)]
    return LeaderboardResult(
        name=cfg.name, n_boot=n_boot, runs=runs, rows=rows, ranking=ranking(rows), missing=missing
    )


def dataset_rows(runs_dir: Path, dataset: str, seeds: dict[int, str], n_boot: int) -> list[BoardRow]:
    """One dataset's students over its finished seeds: `w2sg.seeds.aggregate` of their runs, and
    each method's PGR difference against vanilla from the same two-level draws (paired: the seed
    draws and each seed's question resamples are shared by every column)."""
    runs = [SeedRun(seed=s, result=_result(runs_dir / rid)) for s, rid in seeds.items()]
    columns = [load_columns(runs_dir / rid) for rid in seeds.values()]
    acc, auc = draw_runs(runs, columns, n_boot=n_boot)  # drawn once: the aggregate and the differences
    agg = aggregate(f"{dataset}-seeds", runs, columns, n_boot=n_boot, drawn=(acc, auc))
    keys = {s.key for s in agg.students}
    chance = seeds_chance(agg)  # a seed mean over a seed at chance reads no regime either
    regimes = {f.source: regime(f.floor.mean, agg.ceiling.mean, f.source in chance) for f in agg.sources}
    rows = []
    for s in agg.students:
        vanilla, floor = student_key(s.source, s.loss), f"floor__{s.source}"
        paired = s.method != VANILLA and vanilla in keys
        diffs = {
            "vs_vanilla": pgr_difference(acc, floor, s.key, vanilla) if paired else None,
            "vs_vanilla_auc": pgr_difference(auc, floor, s.key, vanilla) if paired else None,
        }
        fields = {**dict(s), "dataset": dataset, "seeds": agg.seeds, "regime": regimes[s.source], **diffs}
        rows.append(BoardRow.model_validate(fields))
    return ranked(rows)


def _result(run_dir: Path) -> ExperimentResult:
    result = load_complete(run_dir, ExperimentResult)
    if result is None:
        raise ValueError(f"{run_dir}: its cell is marked finished but the run folder is not complete")
    return result


def pgr_difference(drawn: dict[str, Drawn], floor: str, a: str, b: str) -> Estimate:
    """PGR(a) − PGR(b) against the same floor and ceiling, from the same draws of all four."""
    f, c = drawn[floor], drawn["ceiling"]
    pa, pb = mean_pgr(f, drawn[a], c), mean_pgr(f, drawn[b], c)
    diff = pgr_draws(f.draws, drawn[a].draws, c.draws) - pgr_draws(f.draws, drawn[b].draws, c.draws)
    lo, hi = percentile_interval(diff)
    return Estimate(value=pa.value - pb.value, lo=lo, hi=hi, n=pa.n)


def ranked(rows: list[BoardRow]) -> list[BoardRow]:
    """Each (dataset, source, loss) group's rows ordered best first (nan last) and ranked: by PGR
    under a weak-to-strong gap, else by student accuracy (PGR divides by a gap that is not there)."""
    groups: dict[tuple[str, str, str], list[BoardRow]] = {}
    for r in rows:
        groups.setdefault((r.dataset, r.source, r.loss), []).append(r)
    out = []
    for group in groups.values():

        def score(r: BoardRow) -> float:
            return r.pgr.value if r.reads_pgr else r.accuracy.mean.value

        order = sorted(group, key=lambda r: -score(r) if np.isfinite(score(r)) else np.inf)
        out += [r.model_copy(update={"rank": i + 1}) for i, r in enumerate(order)]
    return out


def ranking(rows: list[BoardRow]) -> list[MethodRank]:
    """Methods by their mean PGR over the groups with a weak-to-strong gap, best first (nan, for a
    method with no such group, last)."""
    by: dict[str, list[BoardRow]] = {r.method: [] for r in rows}
    for r in rows:
        if r.reads_pgr:
            by[r.method].append(r)
    out = [
        MethodRank(
            method=m,
            mean_pgr=float(np.nanmean([r.pgr.value for r in rs]))
            if any(np.isfinite(r.pgr.value) for r in rs)
            else float("nan"),
            groups=len(rs),
            above_vanilla=sum(r.vs_vanilla is not None and r.vs_vanilla.lo > 0 for r in rs),
            below_vanilla=sum(r.vs_vanilla is not None and r.vs_vanilla.hi < 0 for r in rs),
        )
        for m, rs in by.items()
    ]
    return sorted(out, key=lambda m: -m.mean_pgr if np.isfinite(m.mean_pgr) else np.inf)
