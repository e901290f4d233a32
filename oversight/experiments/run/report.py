"""The end-to-end report: one table over label sources (label quality raw and calibrated, student,
ceiling, PGR, cost per label) and two plots (PGR per source; cost × label accuracy)."""

from __future__ import annotations

from pathlib import Path

from oversight.experiments.run.results import PipelineResult
from w2sg.report import (
    MIN_GAP,
    auc_table,
    chance_by_source,
    chance_lines,
    collapse_lines,
    dev_table,
    pgr_cell,
    pgr_defined,
    plot,
    regime,
    regime_lines,
    save_plot,
)


def pipeline_table(r: PipelineResult) -> str:
    e = r.experiment
    chance = chance_by_source(e)
    lines = [
        f"Run `{r.run_id}`: sizes {e.sizes} (rows), {e.seconds:.0f} s. Label quality on the strong "
        "split; student and ceiling accuracy on test; 95% CIs from a bootstrap over questions; p: "
        "paired permutation test against the blind judge (each question's signs flipped together).",
        "",
        "| label source | kind | label acc | ECE | Brier | calibrated: acc / ECE | floor | loss | student "
        "| ceiling | PGR | label acc − blind (paired) | tokens / label | model s / label |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += source_rows(r)
    judges = [s for s in r.sources if s.judge is not None]
    lines += ["", *regime_lines({f.source: f.floor for f in e.sources}, e.ceiling, chance=chance)]
    lines += [*chance_lines(e), *collapse_lines(e)]
    if r.passage_questions is not None:
        graph_rows = sum(e.sizes.get(k, 0) for k in ("judge", "calib", "strong", "val"))
        lines += [
            "",
            f"What limits the students: the graph splits ({graph_rows} rows) draw from the "
            f"{r.passage_questions} test-file questions with a passage, so the students learn from "
            f"{e.sizes['strong']} rows; more passage-bearing questions would allow more.",
        ]
    lines += [
        "",
        "† no test predictions (an oversight graph labels only the graph splits, not the students' test "
        "rows): the floor is the label accuracy on the strong split.",
        "Tokens count every call of the graph (debaters, assistant, judge; words for the extractive "
        "reader); weak teachers are one classifier pass per member.",
    ]
    lines += auc_table(e)
    if e.ceiling_dev is not None:
        lines += ["", *dev_table(e)]
        if no_dev := [s.source for s in e.sources if s.floor_dev is None]:
            lines += [
                "",
                f"No dev predictions for {', '.join(no_dev)} (an oversight graph labels only the graph "
                "splits, and an aggregate is built on them): no floor or PGR on dev.",
            ]
    if judges:
        lines += ["", *judge_lines(r)]
    if notes := [f"- {s.source}: {s.note}" for s in r.sources if s.note]:
        lines += ["", "Warnings:", "", *notes]
    lines += oversight_lines(r)
    lines += [
        "",
        f"Transcripts: `w2sg web runs/{r.run_id}` serves every label of this run with its transcript "
        "and provenance, with filters and per-protocol accuracy, at http://127.0.0.1:8000/ "
        "(docs/human-studies.md#the-transcript-viewer).",
    ]
    lines += ["", "Seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in r.stage_seconds.items())]
    return "\n".join(lines) + "\n"


def source_rows(r: PipelineResult) -> list[str]:
    """The table's rows: one per (label source, loss)."""
    e = r.experiment
    floors = {s.source: s for s in e.sources}
    chance = chance_by_source(e)
    students = {(s.source, s.loss): s for s in e.students}
    losses = sorted({s.loss for s in e.students})
    lines: list[str] = []
    for src in r.sources:
        f = floors[src.source]
        cal = f"{src.calibrated.accuracy.value:.3f} / {src.calibrated.ece:.3f}" if src.calibrated else "-"
        tokens = f"{src.tokens_per_label}" if src.tokens_per_label else "-"
        if src.usd_per_label is not None:
            tokens += f" (${src.usd_per_label.value:.6f})"
        secs = f"{src.seconds_per_label.value:.4f}" if src.seconds_per_label else "-"
        d = src.vs_blind
        gain = f"{d.value:+.3f} [{d.lo:+.3f}, {d.hi:+.3f}]" if d else "-"
        if d and src.vs_blind_p is not None:
            gain += f" p={src.vs_blind_p:.3g}"
        floor = f"{f.floor}" + ("" if f.floor_split == "test" else " †")
        for loss in losses:
            s = students[(src.source, loss)]
            gap = pgr_cell(s.pgr, f.floor, e.ceiling, chance=src.source in chance)
            student = f"{s.accuracy}" + (" (collapsed)" if s.collapsed else "")
            raw = src.raw
            cells = [src.source, src.kind, raw.accuracy, f"{raw.ece:.3f}", f"{raw.brier:.3f}", cal, floor]
            cells += [loss, student, e.ceiling, gap, gain, tokens, secs]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return lines


def judge_lines(r: PipelineResult) -> list[str]:
    """Each trained judge: its rows, its accuracy held out and on the rows that picked it, and
    whether its verdicts (its source's labels on the strong split) are at chance."""
    floors = {s.source: s for s in r.experiment.sources}
    lines = ["Trained judges (same gold questions for each):", ""]
    for s in r.sources:
        if (j := s.judge) is None:
            continue
        held = "-" if j.heldout_accuracy is None else f"{j.heldout_accuracy:.3f}"
        line = (
            f"- {s.source}: fine-tuned on {j.rows['train']} rows; accuracy {held} on the "
            f"{j.heldout_rows} calib rows (never used to train or select it); {j.val_accuracy:.3f} on the "
            f"{j.rows['val']} rows that picked its checkpoint"
        )
        # Its verdicts are its source's labels: that source's flag is the judge's.
        flag = floors[s.source].labels_chance if s.source in floors else None
        lines.append(line + (f"; at chance by its verdicts on the strong split: {flag}" if flag else ""))
    return lines


def oversight_lines(r: PipelineResult) -> list[str]:
    """How each oversight source's verdicts were scored (share per method), the rows it left
    unlabelled, and what its models went through in this run (retries, timeouts, failures)."""
    graphs = [s for s in r.sources if s.kind == "oversight"]
    if not graphs:
        return []
    lines = [
        "",
        "Oversight sources: verdicts per scoring method (over every graph-split row); per model role, "
        "calls / retries / timeouts / 429-503 answers / calls that failed / the lowest adaptive "
        "concurrency (of its cap) in this run.",
        "",
        "| source | verdicts by method | rows without a label | models |",
        "|---|---|---|---|",
    ]
    for s in graphs:
        n = sum(s.methods.values()) or 1
        methods = ", ".join(f"{m} {c / n:.0%}" for m, c in sorted(s.methods.items(), key=lambda t: -t[1]))
        failed = f"{len(s.failed)} ({', '.join(s.failed[:3])}{', ...' if len(s.failed) > 3 else ''})"
        keys = ("calls", "retries", "timeouts", "overloaded", "failures", "lowest_concurrency")
        models = "; ".join(
            f"{role}: {' / '.join(f'{u.get(k, 0):.0f}' for k in keys)}" for role, u in s.usage.items()
        )
        lines.append(f"| {s.source} | {methods or '-'} | {failed if s.failed else 0} | {models or '-'} |")
    if opened := [f"- {s.source}: {line}" for s in graphs if s.open_sides for line in s.open_sides.lines()]:
        lines += ["", "Open sides (sides: open), on the strong split:", "", *opened]
    if r.dropped_questions:
        shown = ", ".join(r.dropped_questions[:10]) + (", ..." if len(r.dropped_questions) > 10 else "")
        lines += [
            "",
            f"on_failure: drop: {len(r.dropped_questions)} questions some graph left unlabelled were left "
            f"out of every source's graph splits (both their rows): {shown}.",
        ]
    return lines


#: The PGR axis: intervals reaching past it are clipped, their ends marked and their value printed.
PGR_RANGE = (-1.5, 2.5)


def plot_pgr(r: PipelineResult, path: Path) -> None:
    """PGR per student where it is defined (the supervisor below the ceiling), one row each with
    its CI; the others are named underneath. With none defined, the figure says so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = r.experiment
    floors = {s.source: s.floor for s in e.sources}
    chance = chance_by_source(e)
    shown = [s for s in reversed(e.students) if pgr_defined(floors[s.source], e.ceiling)]
    hidden = sorted({s.source for s in e.students} - {s.source for s in shown})
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.4 * max(1, len(shown))))
    clipped = False
    if shown:
        lo_x, hi_x = PGR_RANGE
        for i, s in enumerate(shown):
            gap = regime(floors[s.source], e.ceiling, s.source in chance) == "gap"
            v, lo, hi = (min(max(x, lo_x), hi_x) for x in (s.pgr.value, s.pgr.lo, s.pgr.hi))
            # Filled: a weak-to-strong regime; hollow: none (no gap, too small, or at chance).
            color = "C0" if gap else "C1"
            err = [[v - lo], [hi - v]]
            ax.errorbar([v], [i], xerr=err, fmt="o", capsize=3, color=color, mfc=color if gap else "white")
            if (lo, hi) != (s.pgr.lo, s.pgr.hi):  # past the range: the clipped ends marked, the value printed
                clipped = True
                for end, x in ((s.pgr.lo, lo), (s.pgr.hi, hi)):
                    if end != x:
                        ax.plot([x], [i], marker="<" if x == lo_x else ">", color="black", markersize=7)
                where = ("axes fraction", "data")
                ax.annotate(f"{s.pgr}", (1.01, i), xycoords=where, va="center", fontsize=7)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.axvline(1, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlim(lo_x - 0.1, hi_x + 0.1)
        ax.set_yticks(list(range(len(shown))), [f"{s.source} · {s.loss}" for s in shown], fontsize=8)
        ax.set_ylim(-0.6, len(shown) - 0.4)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "PGR is undefined for every source here", ha="center", va="center")
    ax.set_xlabel(
        "PGR = (student − floor) / (ceiling − floor); 0: no gain over the supervisor, 1: the ceiling"
    )
    notes = [
        f"filled: a gap beyond the 95% intervals of at least {MIN_GAP:g}, neither at chance; hollow: "
        "no such gap, or the floor or the ceiling at chance (PGR mostly noise, or not readable)"
    ]
    if clipped:
        lo_x, hi_x = PGR_RANGE
        notes.append(f"◀ ▶ an interval clipped at {lo_x:g} / {hi_x:g}; its full value at the right")
    if hidden:
        notes.append("not shown, supervisor ≥ ceiling (PGR undefined): " + ", ".join(hidden))
    fig.text(0.01, 0.01, "\n".join(notes), fontsize=7, wrap=True)
    save_plot(fig, ax, "", r.run_id, path, legend="", bottom=0.05 + 0.035 * len(notes))


def plot_cost(r: PipelineResult, path: Path) -> None:
    """Label accuracy against tokens per label. Sources with no per-label model calls (weak
    teachers) are horizontal lines, each in the legend, so their names cannot overlap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    lines = iter(["--", ":", "-.", (0, (1, 3)), (0, (5, 2, 1, 2))])
    for i, s in enumerate(r.sources):
        a, t = s.raw.accuracy, s.tokens_per_label
        if t is None:
            style = next(lines, ":")
            ax.axhline(a.value, linestyle=style, linewidth=1.2, color=f"C{i}", label=f"{s.source} (no calls)")
            continue
        ax.errorbar(
            t.value,
            a.value,
            xerr=[[t.value - t.lo], [t.hi - t.value]],
            yerr=[[a.value - a.lo], [a.hi - a.value]],
            fmt="o",
            capsize=3,
            color=f"C{i}",
            label=s.source,
        )
    ax.set_xlabel("tokens per label (every call of the graph; 95% CIs)")
    save_plot(fig, ax, "label accuracy (strong split)", r.run_id, path, legend="outside")


def write_pipeline_report(r: PipelineResult, run_dir: Path) -> None:
    (run_dir / "results.md").write_text(pipeline_table(r))
    plot(r.experiment, run_dir / "results.png")
    plot_pgr(r, run_dir / "pgr.png")
    plot_cost(r, run_dir / "cost.png")
