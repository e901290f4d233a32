"""`w2sg run`: the end-to-end experiment."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agents.names import resolve_model_path
from oversight.cli.app import SetOpt, TrackOpt, app, console, load, with_tracking
from oversight.cli.train import ForceOpt, seeds_and_print, summary

if TYPE_CHECKING:
    from w2sg.results import ExperimentResult


@app.command("run", rich_help_panel="Experiments")
def run_cmd(
    config: Annotated[Path, typer.Argument(help="end-to-end YAML (see configs/run-demo.yaml)")],
    force: ForceOpt = False,
    set_: SetOpt = None,
    track: TrackOpt = None,
) -> None:
    """End to end: weak teachers and oversight graphs label a dataset, a strong student learns from
    each label source, one report (label quality, student accuracy, PGR, cost per label)."""
    from oversight.experiments.run.config import RunConfig
    from oversight.experiments.run.runner import run_pipeline
    from oversight.labelling.label import usage_lines

    cfg = load(config, RunConfig, overrides=with_tracking(set_, track))
    if cfg.seeds is not None:  # each seed's run folder has its own report (usage, failed rows)

        def run_one(c: RunConfig) -> ExperimentResult:
            return run_pipeline(c, resolve=resolve_model_path, force=force).experiment

        seeds_and_print(cfg, run_one, force, "judges, labels, students and the ceiling")
        return
    with console.status("judges, labels, students and the ceiling; -v shows each step"):
        result = run_pipeline(cfg, resolve=resolve_model_path, force=force)
    run_dir = cfg.out_dir / result.run_id
    console.print(summary(result.experiment, run_dir), highlight=False)
    for s in result.sources:  # what each graph's models went through, and the rows they left
        for line in usage_lines(s.usage, where=f"{s.source} "):
            console.print(f"[dim]{line}[/dim]", highlight=False, soft_wrap=True)
        if s.failed:
            console.print(f"{s.source}: {len(s.failed)} rows without a label after retries", highlight=False)
    if result.dropped_questions:
        console.print(
            f"on_failure: drop: {len(result.dropped_questions)} questions left out of every source",
            highlight=False,
        )
    console.print(f"[dim]plots: {run_dir / 'pgr.png'}, {run_dir / 'cost.png'}[/dim]", highlight=False)
