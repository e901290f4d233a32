"""`w2sg grid`: judges x debaters x protocols (x datasets), sharded, merged."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from oversight.cli.app import SetOpt, app, console, load

T = TypeVar("T")


def run_shard(
    cells: list[T], shard: str | None, run: Callable[[list[T]], tuple[int, int]], then: str
) -> bool:
    """Run the cells of `shard` (every cell without one) with `run`, which returns (cells run
    now, cells already finished), and say so; True when the report is to be built now (no shard),
    else name the command (`then`) that builds it once every shard is done."""
    from oversight.experiments.grid.config import shard as pick

    mine = pick(cells, shard)
    ran, done = run(mine)
    console.print(
        f"{len(mine)} of {len(cells)} cells{f' (shard {shard})' if shard else ''}: "
        f"{ran} run now, {done} already finished",
        highlight=False,
    )
    if shard is not None:
        console.print(f"when every shard is done: w2sg {then}", highlight=False)
    return shard is None


@app.command("grid", rich_help_panel="Experiments")
def grid_cmd(
    config: Annotated[Path, typer.Argument(help="grid YAML (see configs/grid-offline.yaml)")],
    shard: Annotated[
        str | None,
        typer.Option(help="run only shard i/n (1-based), e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"),
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="only build the report from the finished cells")
    ] = False,
    set_: SetOpt = None,
) -> None:
    """Every cell of the grid is a resumable run folder (a finished cell is never redone); without
    --shard the report is built at the end, with --shard run `--merge` once every shard is done."""
    from oversight.experiments.grid.config import GridConfig
    from oversight.experiments.grid.report import write_report
    from oversight.experiments.grid.runner import merge as merged
    from oversight.experiments.grid.runner import run_grid

    cfg = load(config, GridConfig, overrides=set_)
    if not merge and not run_shard(cfg.cells(), shard, partial(run_grid, cfg), f"grid {config} --merge"):
        return
    result = merged(cfg)
    write_report(result, cfg.grid_dir)
    console.print(
        f"{len(result.cells)} cells in {cfg.grid_dir / 'results.md'} and heatmap.png"
        + (f"; {len(result.missing)} not finished yet" if result.missing else ""),
        highlight=False,
    )
    if result.missing:
        raise typer.Exit(1)
