"""The ladder's per-rung metrics, and its report: results.md (table), results.png (plot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from oversight.experiments.ladder.config import LadderConfig, slice_name
from oversight.experiments.ladder.results import LadderResult, RungResult
from w2sg.data import Example, label_source
from w2sg.metrics import Estimate, correct, label_quality, mean_ci, pgr_ci
from w2sg.report import pgr_cell, regime_lines, save_plot, wrap_label


def _acc(ok: np.ndarray, qids: np.ndarray, cfg: LadderConfig) -> Estimate:
    return mean_ci(ok, qids, n_boot=cfg.n_boot, seed=cfg.seed)


def labels_from(cfg: LadderConfig, k: int, arm: str) -> str:
    if k == 0:
        return "gold"
    src = 0 if arm == "baseline" else k - 1
    text = f"rung {src} ({cfg.rungs[src].name})"
    if arm == "oversight" and cfg.oversight is not None:
        text += f" + {cfg.oversight.column} (w={cfg.oversight.weight:g})"
    return text


def rung_result(
    cfg: LadderConfig,
    k: int,
    arm: str,
    trained: dict[str, Any],
    ceiling: list[float],
    gold: dict[str, np.ndarray],
    qids: dict[str, np.ndarray],
    labels: dict[str, list[float] | None] | None = None,
    rung0: list[float] | None = None,
) -> RungResult:
    """Metrics of rung k's student in one arm. `gold` and `qids` (each row's question, which the
    intervals resample) are given for `rows` (rung k's) and `test`. `labels` (train / val / test
    p(true) of its supervisor; test may be None) and `rung0` (rung 0's labels on the same rows) are
    None at rung 0."""
    student_ok, ceiling_ok = correct(trained["preds"]["test"], gold["test"]), correct(ceiling, gold["test"])
    quality = floor = gap = disagree = None
    floor_split = "-"
    if labels is not None and rung0 is not None:
        train_labels = np.asarray(labels["train"])
        quality = label_quality(train_labels, gold["rows"], qids["rows"], n_boot=cfg.n_boot, seed=cfg.seed)
        disagree = float(np.mean((train_labels > 0.5) != (np.asarray(rung0) > 0.5)))
        paired = labels["test"] is not None
        # A supervisor without test predictions (a mixed-in column that test rows lack) is scored
        # on the rows it labelled, as `w2sg train` scores a recorded label source.
        floor_ok = correct(labels["test"], gold["test"]) if paired else correct(train_labels, gold["rows"])
        floor_split = "test" if paired else f"rung{k} rows"
        floor_q = qids["test" if paired else "rows"]
        floor = _acc(floor_ok, floor_q, cfg)
        gap = pgr_ci(
            floor_ok,
            student_ok,
            ceiling_ok,
            qids["test"],
            floor_groups=floor_q,
            paired=paired,
            n_boot=cfg.n_boot,
            seed=cfg.seed,
        )
    return RungResult(
        rung=k,
        model=cfg.rungs[k].name,
        arm=arm if k else "gold",
        labels_from=labels_from(cfg, k, arm),
        labels=quality,
        disagree_rung0=disagree,
        floor=floor,
        floor_split=floor_split,
        student=_acc(student_ok, qids["test"], cfg),
        ceiling=_acc(ceiling_ok, qids["test"], cfg),
        pgr=gap,
        best_step=trained["best_step"],
        same_as=trained["same_as"],
    )


def markdown_table(r: LadderResult) -> str:
    lines = [
        f"Ladder `{r.run_id}`: {' → '.join(r.rungs)}; sizes {r.sizes} (rows), {r.seconds:.0f} s. "
        "Test accuracy with 95% CIs (bootstrap over questions); label accuracy on the rows each student "
        "learns from.",
        "",
        "| rung | model | arm | labels from | label acc | disagrees with rung-0 labels | supervisor "
        "| student | ceiling | PGR |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r.results:
        if x.labels is None or x.floor is None:  # rung 0: trained on gold, it is its own ceiling
            lines.append(f"| 0 | {x.model} | - | gold | - | - | - | {x.student} | {x.ceiling} | - |")
            continue
        floor = f"{x.floor}" + ("" if x.floor_split == "test" else " †")
        gap = pgr_cell(x.pgr, x.floor, x.ceiling)
        arm = x.arm + (f" (= {x.same_as})" if x.same_as else "")
        lines.append(
            f"| {x.rung} | {x.model} | {arm} | {x.labels_from} | {x.labels.accuracy} "
            f"| {x.disagree_rung0:.3f} | {floor} | {x.student} | {x.ceiling} | {gap} |"
        )
    notes = []
    if any(x.same_as for x in r.results):
        notes.append("(= arm): identical labels, so one student was trained and is reported in both arms.")
    if any(x.floor_split not in ("test", "-") for x in r.results):
        notes.append("† the supervisor has no test predictions: its accuracy on the rows it labelled.")
    notes += capability_lines(r)
    for x in r.results:  # each rung has its own ceiling
        if x.floor is not None:
            where = f"rung {x.rung} ({x.arm})"
            notes += regime_lines({where: x.floor}, x.ceiling, f"rung {x.rung}'s ceiling")
    if notes:
        lines += ["", *notes]
    return "\n".join([*lines, "", *side_by_side(r)]) + "\n"


def rung_ceilings(r: LadderResult) -> list[Estimate]:
    """Each rung's ceiling (its model on gold of its own questions; every arm shares it)."""
    return [next(x for x in r.results if x.rung == k).ceiling for k in range(len(r.rungs))]


def capability_lines(r: LadderResult) -> list[str]:
    """Whether each rung is stronger than the one below: its ceiling (gold of its own questions)
    above the previous rung's beyond both 95% intervals. Without a step, the rung's student has
    nothing to gain over its supervisor that the ladder could show."""
    ceilings = rung_ceilings(r)
    lines = []
    for k in range(1, len(ceilings)):
        now, before = ceilings[k], ceilings[k - 1]
        step = now.lo > before.hi
        lines.append(
            f"{'Capability step' if step else 'No capability step'} at rung {k} ({r.rungs[k]}): its "
            f"ceiling {now} is {'above' if step else 'not above'} rung {k - 1}'s {before} beyond the "
            "95% intervals."
        )
    return lines


def side_by_side(r: LadderResult) -> list[str]:
    """One row per rung: the ceiling, then each arm's student (and its labels' accuracy)."""
    lines = [
        "Side by side, student test accuracy (label accuracy):",
        "",
        "| rung | ceiling | " + " | ".join(r.arms) + " |",
        "|---|---|" + "---|" * len(r.arms),
    ]
    for k, name in enumerate(r.rungs):
        got = {x.arm: x for x in r.results if x.rung == k}
        ceiling = next(iter(got.values())).ceiling
        cells = [
            f"{got[a].student.value:.3f} ({got[a].labels.accuracy.value:.3f})"
            if a in got and got[a].labels is not None
            else f"{got['gold'].student.value:.3f} (gold)"
            for a in r.arms
        ]
        lines.append(f"| {k} {name} | {ceiling.value:.3f} | " + " | ".join(cells) + " |")
    return lines


def plot(r: LadderResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(r.rungs)), 4))
    x = list(range(len(r.rungs)))

    def line(ests: list[Estimate], label: str, shift: float = 0.0, **kw: Any) -> None:
        err = [[e.value - e.lo for e in ests], [e.hi - e.value for e in ests]]
        xs = [i + shift for i in x[-len(ests) :]]  # arms side by side, so equal values stay visible
        ax.errorbar(xs, [e.value for e in ests], yerr=err, capsize=3, label=label, **kw)

    ceilings = rung_ceilings(r)
    line(ceilings, "ceiling (gold)", color="black", ls="--")
    rung0 = next(a for a in r.results if a.rung == 0)
    for i, arm in enumerate(r.arms):
        rows = [a for a in r.results if a.arm == arm]
        kw: dict[str, Any] = {"color": f"C{i}", "shift": 0.04 * (i - (len(r.arms) - 1) / 2)}
        line([rung0.student, *(a.student for a in rows)], f"{arm}: student", marker="o", **kw)
        quality = [a.labels.accuracy for a in rows if a.labels is not None]
        line(quality, f"{arm}: labels", ls=":", marker="x", **kw)
    ax.set_xticks(x, [f"{k}\n{wrap_label(n)}" for k, n in enumerate(r.rungs)], fontsize=8)
    ax.set_xlabel("rung", fontsize=8)
    save_plot(fig, ax, "accuracy (test; labels: their rows)", r.run_id, path, legend="best")


def write_report(r: LadderResult, run_dir: Path) -> None:
    (run_dir / "results.md").write_text(markdown_table(r))
    plot(r, run_dir / "results.png")


def write_run(
    result: LadderResult, columns: dict[str, list[float]], sp: dict[str, list[Example]], run_dir: Path
) -> None:
    """The report, predictions.npz and labels.npz (the runner then marks the run complete)."""
    write_report(result, run_dir)
    test = {k: np.asarray(v) for k, v in columns.items() if not k.startswith("labels__")}
    # Test p(true) per model, in the layout `w2sg compare RUN a b` reads (ids, gold, one column each).
    np.savez(
        run_dir / "predictions.npz",
        ids=np.array([e.id for e in sp["test"]]),
        qids=np.array([e.qid for e in sp["test"]]),
        gold=np.asarray(label_source(sp["test"], "gold")),
        **test,
    )
    # The labels each student learned from, with their rows' ids and gold.
    n = len(result.rungs)
    np.savez(
        run_dir / "labels.npz",
        **{f"ids__rung{k}": np.array([e.id for e in sp[slice_name(k)]]) for k in range(n)},
        **{f"gold__rung{k}": np.asarray(label_source(sp[slice_name(k)], "gold")) for k in range(n)},
        **{k: np.asarray(v) for k, v in columns.items() if k.startswith("labels__")},
    )
