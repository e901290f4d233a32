"""`w2sg ladder CONFIG`: phase 2, a recursively updated automatic alignment evaluator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agents.names import resolve_model_path
from oversight.cli.app import SetOpt, TrackOpt, app, console, load, with_tracking

#: What a rung does after each node of the ladder graph, for the status line.
NEXT = {"label": "training", "train": "evaluating", "evaluate": "promoting", "promote": "labelling"}


@app.command("ladder", rich_help_panel="Experiments")
def ladder_cmd(
    config: Annotated[Path, typer.Argument(help="ladder YAML (see configs/ladder-sciq.yaml)")],
    force: Annotated[bool, typer.Option(help="rerun from rung 0 even if the run folder is complete")] = False,
    out: Annotated[Path | None, typer.Option(help="folder for run folders; overrides out_dir")] = None,
    set_: SetOpt = None,
    track: TrackOpt = None,
) -> None:
    """Ladder of models: rung 0 learns from gold, each rung's student becomes the next evaluator.

    Per rung: label accuracy, drift from rung 0's labels, student accuracy, ceiling and PGR.
    Arms: recursive, the non-recursive baseline, and (if configured) oversight-assisted labels.
    A killed run resumes from its checkpoint; finished rungs are not retrained."""
    from oversight.experiments.ladder.config import LadderConfig
    from oversight.experiments.ladder.report import markdown_table
    from oversight.experiments.ladder.runner import run_ladder

    # --out is `--set out_dir=...`
    cfg = load(
        config,
        LadderConfig,
        overrides=[*with_tracking(set_, track), *([f"out_dir={json.dumps(str(out))}"] if out else [])],
    )
    last = len(cfg.rungs) - 1
    with console.status(f"rung 0/{last} {cfg.rungs[0].name}: labelling; -v shows each step") as status:

        def on_step(rung: int, node: str) -> None:
            if rung <= last:
                status.update(f"rung {rung}/{last} {cfg.rungs[rung].name}: {NEXT[node]}; -v shows each step")

        result = run_ladder(cfg, resolve=resolve_model_path, force=force, on_step=on_step)
    console.print(markdown_table(result), highlight=False, soft_wrap=True)  # markdown rows: one line each
    console.print(f"[dim]results in {cfg.out_dir / result.run_id}[/dim]")
