"""`w2sg tournament`: cross-play debates between debater configurations, rated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oversight.cli.app import SetOpt, TrackOpt, app, console, load, with_tracking
from oversight.cli.train import ForceOpt


@app.command("tournament", rich_help_panel="Experiments")
def tournament_cmd(
    config: Annotated[Path, typer.Argument(help="tournament YAML (see configs/tournament-offline.yaml)")],
    force: ForceOpt = False,
    set_: SetOpt = None,
    track: TrackOpt = None,
) -> None:
    """Cross-play debates between debater configurations on the same questions (both sides, both
    speaking positions), rated with openskill and Bradley-Terry Elo; one report in a run folder.
    --track: progress per match-up and the final ratings in TensorBoard / wandb."""
    from oversight.experiments.tournament.config import TournamentConfig
    from oversight.experiments.tournament.report import by_rating
    from oversight.experiments.tournament.runner import run_tournament

    cfg = load(config, TournamentConfig, overrides=with_tracking(set_, track))
    result, run_dir, loaded = run_tournament(cfg, force=force)
    if loaded:
        console.print(f"{run_dir} is complete; loaded it (--force rebuilds the report)", highlight=False)
    for p in by_rating(result):
        r, e = result.rating[p], result.elo[p]
        console.print(
            f"{p}: rating {r.value:.2f} [{r.lo:.2f}, {r.hi:.2f}], Elo {e.value:.0f} [{e.lo:.0f}, {e.hi:.0f}]",
            highlight=False,
        )
    a = result.judge_accuracy["all"]
    console.print(
        f"judge accuracy {a.value:.3f} [{a.lo:.3f}, {a.hi:.3f}] over {result.matches} debates "
        f"({'loaded' if loaded else f'{result.debates_run} run now'}); report {run_dir / 'results.md'}",
        highlight=False,
        soft_wrap=True,
    )
