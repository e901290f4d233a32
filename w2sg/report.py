"""Experiment results as a markdown table and a PNG plot, next to results.json."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from w2sg.metrics import Estimate

if TYPE_CHECKING:
    from w2sg.experiment import ExperimentResult


def markdown_table(r: ExperimentResult) -> str:
    floors = {s.source: s for s in r.sources}
    lines = [
        f"Run `{r.run_id}`: sizes {r.sizes} (rows), {r.seconds:.0f} s. "
        "Accuracy on test with 95% bootstrap CIs.",
        "",
        "| label source | label acc (strong split) | ECE | Brier | floor | loss | student | ceiling | PGR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in r.students:
        f = floors[s.source]
        floor = f"{f.floor}" + ("" if f.floor_split == "test" else " †")
        gap = f"{s.pgr}" if pgr_defined(f.floor, r.ceiling) else "n/a ‡"
        lines.append(
            f"| {s.source} | {f.labels.accuracy} | {f.labels.ece:.3f} | {f.labels.brier:.3f} | {floor} "
            f"| {s.loss} | {s.accuracy} | {r.ceiling} | {gap} |"
        )
    if any(f.floor_split != "test" for f in r.sources):
        lines += [
            "",
            "† a recorded supervisor without test labels: its floor is its accuracy on the strong split.",
        ]
    if not all(pgr_defined(f.floor, r.ceiling) for f in r.sources):
        lines += [
            "",
            "‡ the supervisor is at least as accurate as the strong ceiling, so there is no gap to "
            "recover and PGR is not meaningful (results.json keeps the raw value).",
        ]
    return "\n".join(lines) + "\n"


def pgr_defined(floor: Estimate, ceiling: Estimate) -> bool:
    """PGR measures how much of a positive floor→ceiling gap the student recovers."""
    return ceiling.value > floor.value


def plot(r: ExperimentResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floors = {s.source: s.floor for s in r.sources}
    names = [f"{_wrap(s.source)}\n{s.loss}" for s in r.students]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(names)), 4))

    def bars(offset: float, ests: list, label: str) -> None:
        vals = [e.value for e in ests]
        err = [[e.value - e.lo for e in ests], [e.hi - e.value for e in ests]]
        ax.bar([i + offset for i in x], vals, width=0.25, yerr=err, capsize=3, label=label)

    bars(-0.25, [floors[s.source] for s in r.students], "weak floor")
    bars(0.0, [s.accuracy for s in r.students], "strong student")
    bars(0.25, [r.ceiling for _ in r.students], "strong ceiling")
    for i, s in zip(x, r.students, strict=True):
        shown = f"{s.pgr.value:.2f}" if pgr_defined(floors[s.source], r.ceiling) else "n/a"
        ax.annotate(f"PGR {shown}", (i, 1.0), ha="center", fontsize=8)
    ax.set_xticks(list(x), names, fontsize=8)
    ax.set_ylim(0.4, 1.05)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(r.run_id, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _wrap(name: str, width: int = 14) -> str:
    """Break long source names at underscores so x labels do not collide."""
    return "\n".join(p.replace(" ", "_") for p in textwrap.wrap(name.replace("_", " "), width))


def write_report(r: ExperimentResult, run_dir: Path) -> None:
    (run_dir / "results.md").write_text(markdown_table(r))
    plot(r, run_dir / "results.png")
