"""`w2sg leaderboard`: W2SG methods x label sources x losses x datasets x seeds, sharded, merged."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from oversight.cli.app import SetOpt, app, check_models, console, load


@app.command("leaderboard", rich_help_panel="Experiments")
def leaderboard_cmd(
    config: Annotated[Path, typer.Argument(help="leaderboard YAML (see configs/leaderboard-sciq.yaml)")],
    shard: Annotated[
        str | None,
        typer.Option(help="run only shard i/n (1-based), e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"),
    ] = None,
    report: Annotated[
        bool, typer.Option("--report", help="only merge the finished cells into the report")
    ] = False,
    set_: SetOpt = None,
) -> None:
    """Every (dataset, seed) cell is one `w2sg train` run of the base with every method (a finished
    cell is never redone); without --shard the report is built at the end, with --shard run
    `--report` once every shard is done."""
    from oversight.cli.grid import run_shard
    from oversight.experiments.leaderboard.config import LeaderboardConfig
    from oversight.experiments.leaderboard.report import write_report
    from oversight.experiments.leaderboard.runner import merge, run_board

    cfg = load(config, LeaderboardConfig, overrides=set_)
    cells = cfg.cells()
    check_models(cells[0].config, config)  # the base's models: given by path, `load` did not see them
    if not report and not run_shard(cells, shard, partial(run_board, cfg), f"leaderboard {config} --report"):
        return
    result = merge(cfg)
    write_report(result, cfg.board_dir)
    console.print(
        f"{len(result.rows)} students in {cfg.board_dir / 'leaderboard.md'}, .json and .png"
        + (f"; {len(result.missing)} cells not finished yet" if result.missing else ""),
        highlight=False,
    )
    if result.missing:
        raise typer.Exit(1)
