"""The tournament's report: results.md (ratings, win rates, judge accuracy) and the plot of judge
accuracy against debater rating (accuracy-vs-rating.png) in the run folder."""

from __future__ import annotations

from pathlib import Path

from oversight.experiments.tournament.results import TournamentResult
from w2sg.metrics import Estimate
from w2sg.report import fmt_ci as _ci


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
        lines.append(f"| {p} | {_ci(r.rating[p], 2)} | {_ci(r.elo[p], 0)} | {_ci(truth)} | {_ci(lie)} |")
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


def _bars(est: list[Estimate]) -> list[list[float]]:
    # A percentile interval of a noisy fit may end at its point: never below zero.
    return [[max(0.0, e.value - e.lo) for e in est], [max(0.0, e.hi - e.value) for e in est]]


def plot_against(
    x: list[Estimate],
    names: list[str],
    series: list[tuple[str, str, list[Estimate]]],
    xlabel: str,
    title: str,
    path: Path,
) -> None:
    """Judge accuracy against a strength `x` (one point per debater, named by `names` at the first
    series), each series (marker, label, estimates) with 95 % error bars both ways."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from w2sg.report import save_plot

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [e.value for e in x]
    for marker, label, est in series:
        ax.errorbar(
            xs, [e.value for e in est], xerr=_bars(x), yerr=_bars(est), fmt=marker, capsize=3, label=label
        )
    for name, xi, e in zip(names, xs, series[0][2], strict=True):
        ax.annotate(name, (xi, e.value), fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel(xlabel)
    ax.set_ylim(-0.02, 1.02)
    save_plot(fig, ax, "judge accuracy", title, path, legend="lower right")


def plot_accuracy(r: TournamentResult, path: Path) -> None:
    """Judge accuracy against each debater's rating: when it argues the truth (more persuasive
    debaters should make the judge more accurate) and when it lies (less accurate)."""
    order = sorted(r.debaters, key=lambda p: r.rating[p].value)
    acc = r.accuracy_by_debater
    series = [
        ("o-", "debater argues the truth", [acc[f"{p}|truth"] for p in order]),
        ("s--", "debater lies", [acc[f"{p}|lie"] for p in order]),
    ]
    x = [r.rating[p] for p in order]
    plot_against(x, order, series, "debater rating (openskill mu, 95 % CI)", f"{r.run_id}: cross-play", path)


def write_report(r: TournamentResult, run_dir: Path) -> None:
    (run_dir / "results.md").write_text(report_md(r))
    plot_accuracy(r, run_dir / "accuracy-vs-rating.png")
