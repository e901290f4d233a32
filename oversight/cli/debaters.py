"""`w2sg debaters train`: DPO rounds of expert iteration from the tool's own debates;
`w2sg debaters evaluate`: the rounds' debaters in cross-play and as label sources of a student."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from oversight.cli.app import SetOpt, TrackOpt, app, console, load, with_tracking
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
    track: TrackOpt = None,
) -> None:
    """Best-of-N debates ranked by the judge give (chosen, rejected) turn pairs; DPO with LoRA trains
    the debater on them, K rounds, each round's model saved as hf/<run>/model-rK. Resumes after a kill.
    --track: each round's DPO curves in TensorBoard / wandb."""
    from oversight.experiments.debaters.config import DebaterTrainConfig
    from oversight.experiments.debaters.runner import train_debaters

    cfg = load(config, DebaterTrainConfig, overrides=with_tracking(set_, track))
    result, run_dir, loaded = train_debaters(cfg, force=force)
    if loaded:
        console.print(f"{run_dir} is complete; loaded it (--force trains again)", highlight=False)
    lines = [
        f"round {r.round}: {r.pairs} pairs from {r.turns} turns, DPO loss {r.dpo.loss_first:.4f} → "
        f"{r.dpo.loss_last:.4f}, margin {r.dpo.margin_last:.4f}, {r.dpo.seconds_per_step:.2f} s/step; "
        f"model {r.model}"
        for r in result.rounds
    ]
    _say(lines, run_dir / "results.md")


@debaters_app.command("evaluate")
def evaluate_cmd(
    config: Annotated[Path, typer.Argument(help="debater training YAML with its `evaluation:` section")],
    force: ForceOpt = False,
    set_: SetOpt = None,
    track: TrackOpt = None,
) -> None:
    """Train the rounds (or load them); then r0 and every round's model debate held-out questions in
    cross-play (ratings; judge accuracy when each argues the truth, when it lies, against r0) and
    self-play, and, with `evaluation.student`, label a `w2sg run` for a student. Resumes."""
    from oversight.experiments.debaters.config import DebaterTrainConfig
    from oversight.experiments.debaters.evaluate import evaluate_debaters

    cfg = load(config, DebaterTrainConfig, overrides=with_tracking(set_, track))
    ev, _, out, loaded = evaluate_debaters(cfg, force=force)
    if loaded:
        console.print(f"{out} is complete; loaded it (--force evaluates again)", highlight=False)
    lines = [
        f"r{r.round}: Elo {r.elo.value:.0f} [{r.elo.lo:.0f}, {r.elo.hi:.0f}]; judge {r.judge_self} in "
        f"self-play, {r.judge_truth} when it argues the truth, {r.judge_lie} when it lies"
        + (f"; student {r.student}" if r.student is not None else "")
        for r in ev.rounds
    ]
    _say(lines, out / "results.md")


def _say(lines: list[str], report: Path) -> None:
    """One line per round (wrapped by the terminal, not cut), then where the report is."""
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"report {report}", highlight=False)
