"""`w2sg debaters train`: DPO rounds of expert iteration from the tool's own debates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oversight.cli.app import SetOpt, app, console, load
from oversight.cli.train import ForceOpt

debaters_app = typer.Typer(
    help="Train debaters on preference pairs from their own debates.", no_args_is_help=True
)
app.add_typer(debaters_app, name="debaters", rich_help_panel="Experiments")


@debaters_app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Argument(help="debater training YAML (see configs/dpo-debaters.yaml)")],
    force: ForceOpt = False,
    set_: SetOpt = None,
) -> None:
    """Best-of-N debates ranked by the judge give (chosen, rejected) turn pairs; DPO with LoRA trains
    the debater on them, K rounds, each round's model saved as hf/<run>/model-rK. Resumes after a kill."""
    from oversight.experiments.debaters.config import DebaterTrainConfig
    from oversight.experiments.debaters.runner import train_debaters

    cfg = load(config, DebaterTrainConfig, overrides=set_)
    result, run_dir, loaded = train_debaters(cfg, force=force)
    if loaded:
        console.print(f"{run_dir} is complete; loaded it (--force trains again)", highlight=False)
    for r in result.rounds:
        d = r.dpo
        console.print(
            f"round {r.round}: {r.pairs} pairs from {r.turns} turns, DPO loss {d.loss_first:.4f} → "
            f"{d.loss_last:.4f}, margin {d.margin_last:.4f}, {d.seconds_per_step:.2f} s/step; "
            f"model {r.model}",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"report {run_dir / 'results.md'}", highlight=False)
