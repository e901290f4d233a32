"""The leaderboard's report from its finished cells: leaderboard.json (every figure),
leaderboard.md (the ranking of methods, then per dataset, label source and loss each method's
figures ranked by PGR, with its paired difference against vanilla) and leaderboard.png (PGR per
method with its interval, one panel per dataset)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from oversight.experiments.leaderboard.runner import BoardRow, LeaderboardResult
from w2sg.metrics import Estimate
from w2sg.report import close_plot, write_folder
from w2sg.report import fmt_ci as _ci

#: Marks a method whose paired difference against vanilla excludes 0.
SURE = "†"


def excludes_zero(e: Estimate | None) -> bool:
    return e is not None and (e.lo > 0 or e.hi < 0)


def _ranking_md(r: LeaderboardResult) -> list[str]:
    lines = [
        "## Ranking",
        "",
        "Methods by PGR (accuracy) averaged over the dataset × label source × loss groups with a "
        "weak-to-strong gap (the seed-mean ceiling above the supervisor beyond the intervals and by "
        "at least the minimum gap; elsewhere PGR measures nothing); above / below vanilla: in how "
        "many of those the paired difference against vanilla excludes 0.",
        "",
        "| rank | method | mean PGR | above vanilla | below vanilla |",
        "|---|---|---|---|---|",
    ]
    for i, m in enumerate(r.ranking, 1):
        lines.append(
            f"| {i} | {m.method} | {_mean(m.mean_pgr)} | {m.above_vanilla} of {m.groups} "
            f"| {m.below_vanilla} of {m.groups} |"
        )
    return lines


def _mean(x: float) -> str:
    return f"{x:.3f}" if np.isfinite(x) else "n/a"


#: What a group without a weak-to-strong gap says instead of its PGR (w2sg.report.regime).
NO_REGIME = {
    "above": "the supervisor is at least as accurate as the ceiling: no gap to recover",
    "overlap": "the ceiling is within the supervisor's 95 % interval",
    "small": "the gap is below the minimum gap",
    "chance": "the supervisor or the ceiling is at chance in some seed",
}


def _row_md(row: BoardRow) -> str:
    if not row.reads_pgr:  # PGR and its differences divide by a gap that is not there
        row = row.model_copy(
            update={"pgr": None, "auc_pgr": None, "vs_vanilla": None, "vs_vanilla_auc": None}
        )
    mark = f" {SURE}" if excludes_zero(row.vs_vanilla) else ""
    collapsed = ", ".join(map(str, row.collapsed))
    cells = [
        str(row.rank),
        row.method + mark,
        _ci(row.accuracy.mean),
        _ci(row.pgr),
        _ci(row.auc_pgr),
        _ci(row.vs_vanilla, sign=True),
        _ci(row.vs_vanilla_auc, sign=True),
        f"collapsed in seed {collapsed}" if collapsed else "",
    ]
    return "| " + " | ".join(cells) + " |"


def report_md(r: LeaderboardResult) -> str:
    """Figures only, no wall times or paths: shards merged and one whole run give the same text."""
    seeds = sorted({s for runs in r.runs.values() for s in runs})
    lines = [
        f"# Leaderboard `{r.name}`",
        "",
        f"{sum(map(len, r.runs.values()))} cells finished, {len(r.missing)} missing; seeds "
        f"{', '.join(map(str, seeds))}. Each figure is a mean over seeds with its 95 % interval from "
        f"a two-level bootstrap over seeds and questions ({r.n_boot} resamples); Δ vs vanilla: the "
        f"paired difference of PGR against vanilla's (same dataset, label source and loss, the same "
        f"seed and question draws); {SURE}: its interval excludes 0.",
        "",
        *_ranking_md(r),
    ]
    head = ["rank", "method", "student accuracy", "PGR", "AUC-PGR", "Δ PGR vs vanilla", "Δ AUC-PGR", "notes"]
    group = None
    for row in r.rows:
        if (row.dataset, row.source, row.loss) != group:
            group = (row.dataset, row.source, row.loss)
            lines += ["", f"## {row.dataset} · {row.source} · {row.loss}", ""]
            if not row.reads_pgr:
                lines += [
                    f"No weak-to-strong regime ({NO_REGIME[row.regime]}), so PGR is not read here: "
                    "methods are ranked by student accuracy.",
                    "",
                ]
            lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        lines.append(_row_md(row))
    if collapsed := [x for x in r.rows if x.collapsed]:
        lines += ["", "Collapsed students (their figures are no evidence of the method):", ""]
        lines += [
            f"- {x.dataset} · {x.source} · {x.loss} · {x.method}, seed {k}: {why}"
            for x in collapsed
            for k, why in x.collapsed.items()
        ]
    if r.missing:
        lines += ["", "Missing (not finished yet):", ""]
        lines += ["- " + ", ".join(f"{k}={v}" for k, v in m.items()) for m in r.missing]
    lines += ["", "![PGR per method](leaderboard.png)", ""]
    return "\n".join(lines)


def plot(r: LeaderboardResult, path: Path) -> None:
    """PGR per method with its interval, one panel per dataset, a marker per label source × loss
    with a weak-to-strong gap (PGR measures nothing elsewhere)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(row.dataset for row in r.rows))
    methods = [m.method for m in r.ranking]
    series = list(dict.fromkeys((row.source, row.loss) for row in r.rows if row.reads_pgr))
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(0.9 + 0.8 * len(methods) * len(datasets), 3.4), squeeze=False, sharey=True
    )
    width = 0.8 / max(1, len(series))
    for ax, ds in zip(axes[0], datasets, strict=True):
        for j, (src, loss) in enumerate(series):
            rows = {
                x.method: x
                for x in r.rows
                if (x.dataset, x.source, x.loss) == (ds, src, loss) and x.reads_pgr
            }
            xs = [i + (j - (len(series) - 1) / 2) * width for i, m in enumerate(methods) if m in rows]
            pg = [rows[m].pgr for m in methods if m in rows]
            y = np.array([e.value for e in pg])
            err = np.array([[e.value - e.lo for e in pg], [e.hi - e.value for e in pg]])
            ax.errorbar(xs, y, yerr=np.abs(err), fmt="o", ms=4, capsize=2, label=f"{src} · {loss}")
        ax.axhline(0.0, color="grey", lw=0.6)
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=7)
        ax.set_title(ds, fontsize=8)
    axes[0][0].set_ylabel("PGR (mean over seeds, 95 % CI)")
    if series:  # no group with a gap: nothing plotted, no legend
        axes[0][-1].legend(fontsize=6, loc="best")
    fig.suptitle(f"leaderboard {r.name}", fontsize=8)
    close_plot(fig, path)


def write_report(r: LeaderboardResult, board_dir: Path) -> None:
    texts = {"leaderboard.md": report_md(r), "leaderboard.json": r.model_dump_json(indent=2)}
    write_folder(board_dir, texts, partial(plot, r) if r.rows else None, "leaderboard.png")
