"""The grid's report from its finished cells: results.md (one row per cell), results.json and
heatmap.png (label accuracy; rows: dataset x judge, columns: debater x protocol)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np

from oversight.experiments.grid.runner import CellResult, GridResult
from w2sg.metrics import Estimate, paired_gain, paired_permutation
from w2sg.report import close_plot, write_folder
from w2sg.report import fmt_ci as _ci


def _row(c: CellResult) -> str:
    return " / ".join(v for k, v in c.axes.items() if k in ("dataset", "judge") and v != "-")


def _col(c: CellResult) -> str:
    return " / ".join(v for k, v in c.axes.items() if k in ("debater", "protocol") and v != "-")


class VsBlind(NamedTuple):
    cell: CellResult
    blind: CellResult
    gain: Estimate  # label accuracy minus the blind cell's, paired over the rows both labelled
    p: float  # two-sided, paired permutation test (a question's rows flip together)


def vs_blind(cells: list[CellResult], n_boot: int = 1000, n_perm: int = 10000) -> list[VsBlind]:
    """Every cell with a speaker against the blind cell of its judge (and dataset): the gain in label
    accuracy with its 95 % paired bootstrap interval and the permutation p, over the rows both
    labelled. Cells from before outcomes were recorded are left out."""
    blind = {_row(c): c for c in cells if c.axes["debater"] == "-" and c.outcomes}
    out = []
    for c in cells:
        b = blind.get(_row(c))
        if b is None or c is b or not c.outcomes:
            continue
        shared = sorted(set(c.outcomes) & set(b.outcomes))  # type: ignore[arg-type]
        if not shared:
            continue
        ok_c = np.array([c.outcomes[i][1] for i in shared])
        ok_b = np.array([b.outcomes[i][1] for i in shared])  # type: ignore[index]
        qids = np.array([c.outcomes[i][0] for i in shared])
        gain = paired_gain(ok_c, ok_b, qids, n_boot=n_boot)
        out.append(VsBlind(c, b, gain, paired_permutation(ok_c, ok_b, qids, n_perm=n_perm)))
    return out


def report_md(r: GridResult) -> str:
    """Cells only, no wall times: shards merged and one whole run give the same table."""
    datasets = any(c.axes.get("dataset", "-") != "-" for c in r.cells)
    train = any(c.pgr is not None for c in r.cells)
    head = ["dataset"] * datasets + ["judge", "debater", "protocol", "label accuracy", "ECE"]
    head += ["student", "PGR"] * train + ["cell"]
    lines = [
        f"# Grid `{r.name}`",
        "",
        f"{len(r.cells)} cells finished, {len(r.missing)} missing. Intervals: 95 % bootstrap over questions.",
        "",
        "| " + " | ".join(head) + " |",
        "|---" * len(head) + "|",
    ]
    for c in r.cells:
        cells = [c.axes["dataset"]] * datasets + [c.axes["judge"], c.axes["debater"], c.axes["protocol"]]
        cells += [_ci(c.label_accuracy), f"{c.ece:.3f}"]
        cells += [_ci(c.student_accuracy), _ci(c.pgr)] * train
        cells.append(f"`{c.id}`")
        lines.append("| " + " | ".join(cells) + " |")
    if compared := vs_blind(r.cells):
        lines += [
            "",
            "## Against the blind judge",
            "",
            "Label accuracy minus the blind cell's of the same judge, paired over the rows both labelled "
            "(95 % bootstrap over questions), and the two-sided p of a paired permutation test.",
            "",
            "| " + " | ".join(["dataset"] * datasets + ["judge", "debater", "protocol", "gain", "p"]) + " |",
            "|---" * (5 + datasets) + "|",
        ]
        for v in compared:
            ax = v.cell.axes
            cells = [ax["dataset"]] * datasets + [ax["judge"], ax["debater"], ax["protocol"]]
            cells += [_ci(v.gain, sign=True), f"{v.p:.4f}"]
            lines.append("| " + " | ".join(cells) + " |")
    if r.missing:
        lines += ["", "Missing (not finished yet):", ""]
        lines += ["- " + ", ".join(f"{k}={v}" for k, v in m.items() if v != "-") for m in r.missing]
    lines += ["", "![label accuracy per cell](heatmap.png)", ""]
    return "\n".join(lines)


def plot_heatmap(r: GridResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = list(dict.fromkeys(_row(c) for c in r.cells))
    cols = list(dict.fromkeys(_col(c) for c in r.cells))
    grid = np.full((len(rows), len(cols)), np.nan)
    for c in r.cells:
        grid[rows.index(_row(c)), cols.index(_col(c))] = c.label_accuracy.value
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(cols), 1.0 + 0.55 * len(rows)))
    im = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v):
            ax.text(
                j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < 0.6 else "black"
            )
    ax.set_xticks(range(len(cols)), [c.replace(" / ", "\n") for c in cols], fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xlabel("debater / protocol")
    ax.set_ylabel("judge")
    fig.colorbar(im, ax=ax, label="label accuracy")
    ax.set_title(f"grid {r.name}: label accuracy", fontsize=8)
    close_plot(fig, path)


def write_report(r: GridResult, grid_dir: Path) -> None:
    texts = {"results.md": report_md(r), "results.json": r.model_dump_json(indent=2)}
    write_folder(grid_dir, texts, partial(plot_heatmap, r) if r.cells else None, "heatmap.png")
