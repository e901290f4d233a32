"""`w2sg run`: the end-to-end experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oversight.cli.app import SetOpt, TrackOpt, app, console, load, with_tracking
from oversight.cli.train import ForceOpt, print_summary, summary


@app.command("run", rich_help_panel="Experiments")
def run_cmd(
    config: Annotated[Path, typer.Argument(help="end-to-end YAML (see configs/run-demo.yaml)")],
    force: ForceOpt = False,
    set_: SetOpt = None,
    track: TrackOpt = None,
) -> None:
    """End to end: weak teachers and oversight graphs label a dataset, a strong student learns from
    each label source, one report (label quality, student accuracy, PGR, cost per label)."""
    from oversight.api import run
    from oversight.experiments.run.config import RunConfig
    from oversight.labelling.label import usage_lines
    from w2sg.results import SeedsResult

    cfg = load(config, RunConfig, overrides=with_tracking(set_, track))
    seeds = "" if cfg.seeds is None else f", seeds {cfg.seeds}"
    with console.status(f"judges, labels, students and the ceiling{seeds}; -v shows each step"):
        result = run(cfg, force=force)
    if isinstance(result, SeedsResult):  # each seed's run folder has its own report (usage, failed rows)
        print_summary(result, cfg.out_dir)
        return
    run_dir = cfg.out_dir / result.run_id
    console.print(summary(result.experiment, run_dir), highlight=False)
    for s in result.sources:  # what each graph's models went through, and the rows they left
        for line in usage_lines(s.usage, where=f"{s.source} "):
            console.print(f"[dim]{line}[/dim]", highlight=False)  # wrapped at words to the terminal
        if s.failed:
            console.print(f"{s.source}: {len(s.failed)} rows without a label after retries", highlight=False)
    if result.dropped_questions:
        console.print(
            f"on_failure: drop: {len(result.dropped_questions)} questions left out of every source",
            highlight=False,
        )
    console.print(f"[dim]plots: {run_dir / 'pgr.png'}, {run_dir / 'cost.png'}[/dim]", highlight=False)
