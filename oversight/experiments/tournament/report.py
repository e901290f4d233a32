"""The tournament's report: results.md (ratings, win rates, judge accuracy) and the plot of judge
accuracy against debater rating (accuracy-vs-rating.png) in the run folder."""

from __future__ import annotations

from pathlib import Path

from oversight.experiments.tournament.results import TournamentResult
from w2sg.metrics import Estimate


def _ci(e: Estimate, digits: int = 3) -> str:
    return f"{e.value:.{digits}f} [{e.lo:.{digits}f}, {e.hi:.{digits}f}]"


def by_rating(r: TournamentResult) -> list[str]:
    return sorted(r.debaters, key=lambda p: -r.rating[p].value)


def report_md(r: TournamentResult) -> str:
    order = by_rating(r)
    lines = [
        f"# Tournament `{r.run_id}`",
        "",
        f"{len(r.debaters)} debaters, {r.questions} questions (2 rows each), {r.matches} debates "
        f"({r.draws} draws), {r.seconds:.0f} s ({r.debates_run} debates run by this call). Intervals: "
        "95 % bootstrap over questions.",
        "",
        "## Ratings",
        "",
        "| debater | openskill mu | Elo (Bradley-Terry) | judge accuracy when it argues the truth "
        "| when it lies |",
        "|---|---|---|---|---|",
    ]
    acc = r.accuracy_by_debater
    for p in order:
        truth, lie = acc.get(f"{p}|truth"), acc.get(f"{p}|lie")
        lines.append(
            f"| {p} | {_ci(r.rating[p], 2)} | {_ci(r.elo[p], 0)} | "
            f"{_ci(truth) if truth else '–'} | {_ci(lie) if lie else '–'} |"
        )
    lines += ["", "## Win rates (row against column, both sides and speaking positions)", ""]
    lines += ["| | " + " | ".join(order) + " |", "|---" * (len(order) + 1) + "|"]
    for p in order:
        cells = [f"{v:.2f}" if (v := r.win_rate[p][q]) is not None else "–" for q in order]
        lines.append(f"| **{p}** | " + " | ".join(cells) + " |")
    ja = r.judge_accuracy
    lines += ["", "## Judge accuracy", "", f"- every debate: {_ci(ja['all'])}"]
    for key, what in (("stronger_truthful", "argues the truth"), ("stronger_lying", "lies")):
        if key in ja:
            lines.append(f"- the higher-rated debater of the match {what}: {_ci(ja[key])}")
    lines += ["", "![judge accuracy against debater rating](accuracy-vs-rating.png)", ""]
    return "\n".join(lines)


def plot_accuracy(r: TournamentResult, path: Path) -> None:
    """Judge accuracy against each debater's rating: when it argues the truth (more persuasive
    debaters should make the judge more accurate) and when it lies (less accurate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from w2sg.report import save_plot

    fig, ax = plt.subplots(figsize=(6, 4))
    order = sorted(r.debaters, key=lambda p: r.rating[p].value)
    x = [r.rating[p].value for p in order]
    # A percentile interval of a noisy fit may end at its point: never below zero.
    xerr = [
        [max(0.0, r.rating[p].value - r.rating[p].lo) for p in order],
        [max(0.0, r.rating[p].hi - r.rating[p].value) for p in order],
    ]
    for key, marker, label in (("truth", "o-", "debater argues the truth"), ("lie", "s--", "debater lies")):
        est = [r.accuracy_by_debater[f"{p}|{key}"] for p in order]
        y = [e.value for e in est]
        yerr = [[max(0.0, e.value - e.lo) for e in est], [max(0.0, e.hi - e.value) for e in est]]
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt=marker, capsize=3, label=label)
    for p, xi in zip(order, x, strict=True):
        ax.annotate(
            p,
            (xi, r.accuracy_by_debater[f"{p}|truth"].value),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("debater rating (openskill mu, 95 % CI)")
    ax.set_ylim(-0.02, 1.02)
    save_plot(fig, ax, "judge accuracy", f"{r.run_id}: cross-play", path, legend="lower right")


def write_report(r: TournamentResult, run_dir: Path) -> None:
    (run_dir / "results.md").write_text(report_md(r))
    plot_accuracy(r, run_dir / "accuracy-vs-rating.png")
