"""`results.md` of a `w2sg debaters train` run (one line per round) and of its evaluation
(`evaluation/results.md`, `evaluation/accuracy-vs-rating.png`)."""

from __future__ import annotations

from pathlib import Path

from oversight.experiments.debaters.results import DebaterEvaluation, DebaterTrainResult
from oversight.experiments.tournament.report import plot_against
from oversight.experiments.tournament.results import TournamentResult
from w2sg.report import fmt_ci as _ci


def write_report(result: DebaterTrainResult, run_dir: Path) -> None:
    lines = [
        f"# Debater DPO: {result.run_id}",
        "",
        "| round | questions | turns | pairs | DPO loss first → last | reward margin first → last "
        "| s/step | model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result.rounds:
        d = r.dpo
        lines.append(
            f"| {r.round} | {r.questions} | {r.turns} | {r.pairs} | {d.loss_first:.4f} → {d.loss_last:.4f} "
            f"| {d.margin_first:.4f} → {d.margin_last:.4f} | {d.seconds_per_step:.2f} | `{r.model}` |"
        )
    (run_dir / "results.md").write_text("\n".join(lines) + "\n")


def evaluation_md(ev: DebaterEvaluation, trained: DebaterTrainResult, t: TournamentResult) -> str:
    dpo = {r.round: r for r in trained.rounds}
    lines = [
        f"# Trained debaters, evaluated: {ev.run_id}",
        "",
        f"Cross-play tournament `{ev.tournament}`: r0 (the config's debater) and each round's model on "
        f"{ev.questions} held-out questions (2 rows each; none debated in a round, none the judge trained "
        f"on), {ev.matches} debates (every ordered pair, both sides, both speaking positions; plain turns, "
        f"not best-of-N), {t.draws} draws; and each debater in self-play on the same rows. Judge accuracy "
        f"over all cross-play debates {_ci(ev.judge_accuracy)}. Intervals: 95 % bootstrap over questions.",
        "",
        "| round | DPO pairs | DPO loss first → last | openskill mu | Elo | judge acc., self-play "
        "| judge acc., it argues the truth | judge acc., it lies |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in ev.rounds:
        d = dpo.get(r.round)
        pairs = str(d.pairs) if d else "–"
        loss = f"{d.dpo.loss_first:.4f} → {d.dpo.loss_last:.4f}" if d else "–"
        lines.append(
            f"| r{r.round} | {pairs} | {loss} | {_ci(r.rating, 2)} | {_ci(r.elo, 0)} | {_ci(r.judge_self)} "
            f"| {_ci(r.judge_truth)} | {_ci(r.judge_lie)} |"
        )
    lines += [
        "",
        "## Against r0: does persuasion help the truth more than the lie?",
        "",
        "In its debates against r0: the judge's accuracy when the round's debater argues the truth "
        "(honest) and when it lies (lying); help = honest − r0's self-play accuracy, hurt = r0's "
        "self-play accuracy − lying; help − hurt > 0: the trained debater's persuasion gains the truth "
        "more than it gains the lie.",
        "",
        "| round | honest | lying | help | hurt | help − hurt |",
        "|---|---|---|---|---|---|",
    ]
    for r in ev.rounds[1:]:
        lines.append(
            f"| r{r.round} | {_ci(r.honest)} | {_ci(r.lying)} | {_ci(r.help, sign=True)} "
            f"| {_ci(r.hurt, sign=True)} | {_ci(r.net, sign=True)} |"
        )
    if ev.student_run is not None:
        lines += [
            "",
            f"## Labels and students (`w2sg run` `{ev.student_run}`)",
            "",
            "Each round's debater on both sides of every graph-split row, the same judge; label accuracy on "
            f"the strong split, the student trained on the labels tested on held-out questions (ceiling "
            f"{_ci(ev.ceiling)}).",
            "",
            "| round | label accuracy | ECE | student | PGR | note |",
            "|---|---|---|---|---|---|",
        ]
        for r in ev.rounds:
            ece = f"{r.labels.ece:.3f}" if r.labels else "–"
            lines.append(
                f"| r{r.round} | {_ci(r.labels.accuracy if r.labels else None)} | {ece} | {_ci(r.student)} "
                f"| {_ci(r.pgr)} | {r.student_note or ''} |"
            )
    lines += ["", "Questions shared (for the reader; none puts gold into a score):", ""]
    lines += [f"- {what}: {n}" for what, n in ev.overlap.items()]
    lines += ["", "![judge accuracy against debater Elo, per round](accuracy-vs-rating.png)", ""]
    return "\n".join(lines)


def plot_rounds(ev: DebaterEvaluation, path: Path) -> None:
    """Judge accuracy against each round's Elo: in self-play, and when it argues the truth / lies."""
    rounds = sorted(ev.rounds, key=lambda r: r.elo.value)
    series = [
        ("D-", "self-play", [r.judge_self for r in rounds]),
        ("o-", "it argues the truth", [r.judge_truth for r in rounds]),
        ("s--", "it lies", [r.judge_lie for r in rounds]),
    ]
    names = [f"r{r.round}" for r in rounds]
    title = f"{ev.run_id}: trained debaters"
    plot_against([r.elo for r in rounds], names, series, "debater Elo in cross-play (95 % CI)", title, path)


def write_evaluation_report(
    ev: DebaterEvaluation, trained: DebaterTrainResult, t: TournamentResult, out: Path
) -> None:
    """results.md and accuracy-vs-rating.png (one point per round) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(evaluation_md(ev, trained, t))
    plot_rounds(ev, out / "accuracy-vs-rating.png")
