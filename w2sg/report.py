"""Experiment results as a markdown table and a PNG plot, next to results.json."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from w2sg.metrics import Estimate, auc_ci, correct, mean_ci
from w2sg.results import VANILLA, ExperimentResult, ICLResult, ICLRow, SeedsResult, SeedStat


def markdown_table(r: ExperimentResult) -> str:
    floors = {s.source: s for s in r.sources}
    chance = chance_by_source(r)
    lines = [
        f"Run `{r.run_id}`: sizes {r.sizes} (rows), {r.seconds:.0f} s. "
        "Accuracy on test; 95% CIs from a bootstrap over questions.",
        "",
        "| label source | label acc (strong split) | ECE | Brier | floor | loss | student | ceiling | PGR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in r.students:
        f = floors[s.source]
        floor = f"{f.floor}" + ("" if f.floor_split == "test" else " †")
        gap = pgr_cell(s.pgr, f.floor, r.ceiling, chance=s.source in chance)
        student = f"{s.accuracy}" + (" (collapsed)" if s.collapsed else "")
        lines.append(
            f"| {s.source} | {f.labels.accuracy} | {f.labels.ece:.3f} | {f.labels.brier:.3f} | {floor} "
            f"| {s.trained} | {student} | {r.ceiling} | {gap} |"
        )
    if any(f.floor_split != "test" for f in r.sources):
        lines += [
            "",
            "† a supervisor with no test predictions (a recorded column, or an oversight graph: test rows "
            "have no passage): its floor is its accuracy on the strong split.",
        ]
    if any(s.method != VANILLA for s in r.students):
        lines += ["", "loss · method: a student whose labels a W2SG method made (docs/methods.md)."]
    lines += ["", *regime_lines({f.source: f.floor for f in r.sources}, r.ceiling, chance=chance)]
    lines += ["(results.json keeps every raw PGR.)", *chance_lines(r), *collapse_lines(r)]
    lines += auc_table(r)
    if r.ceiling_dev is not None:
        lines += ["", *dev_table(r)]
    if r.ensembles:
        lines += ["", *ensemble_table(r)]
    return "\n".join(lines) + "\n"


def dev_table(r: ExperimentResult) -> list[str]:
    """Every model on the dev split (no model trains or selects on it): where settings are chosen."""
    ceiling = r.ceiling_dev
    if ceiling is None:
        return []
    floors = {s.source: s.floor_dev for s in r.sources}
    chance = chance_by_source(r, dev=True)
    lines = [
        f"Validation (dev split, {r.sizes.get('dev', 0)} rows: choose settings here, not on test)",
        "",
        "| label source | floor (dev) | loss | student (dev) | ceiling (dev) | PGR (dev) |",
        "|---|---|---|---|---|---|",
    ]
    for s in r.students:
        floor = floors.get(s.source)
        gap = pgr_cell(s.pgr_dev, floor, ceiling, chance=s.source in chance)
        cells = ["-" if x is None else str(x) for x in (floor, s.accuracy_dev)]
        lines.append(f"| {s.source} | {cells[0]} | {s.trained} | {cells[1]} | {ceiling} | {gap} |")
    return [*lines, "", *dev_regime_lines(r)]


def auc_table(r: ExperimentResult) -> list[str]:
    """ROC AUC of every model and PGR on AUC (as EleutherAI/w2s reports it), on test and on dev
    when there is a dev split; nothing for a result written before AUC was measured."""
    if r.ceiling_auc is None:
        return []
    floors = {s.source: s for s in r.sources}
    dev = r.ceiling_auc_dev
    chance, chance_dev = chance_by_source(r), chance_by_source(r, dev=True)
    head = "| label source | floor AUC | loss | student AUC | ceiling AUC | AUC-PGR |"
    if dev is not None:
        head += " student AUC (dev) | AUC-PGR (dev) |"
    lines = [
        "",
        "ROC AUC (threshold-free: the chance a true row scores above a false one), and PGR on AUC, "
        "(student − floor) / (ceiling − floor) of the AUCs as EleutherAI/w2s reports it; 95% CIs over "
        f"questions. Ceiling AUC {r.ceiling_auc}" + ("" if dev is None else f", on dev {dev}") + ".",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for s in r.students:
        f = floors[s.source]
        floor = cell(f.floor_auc) + ("" if f.floor_split == "test" else " †")
        row = f"| {s.source} | {floor} | {s.trained} | {cell(s.auc)} | {r.ceiling_auc} | "
        row += pgr_cell(s.auc_pgr, f.floor_auc, r.ceiling_auc, chance=s.source in chance) + " |"
        if dev is not None:
            gap = pgr_cell(s.auc_pgr_dev, f.floor_auc_dev, dev, chance=s.source in chance_dev)
            row += f" {cell(s.auc_dev)} | {gap} |"
        lines.append(row)
    return lines


def md_head(title: str, columns: list[str]) -> list[str]:
    """A markdown table's title line, a blank line, its header and the rule under it."""
    return [title, "", f"| {' | '.join(columns)} |", "|---" * len(columns) + "|"]


def cell(e: Estimate | None) -> str:
    return "-" if e is None else str(e)


def fmt_ci(e: Estimate | None, digits: int = 3, sign: bool = False) -> str:
    """`value [lo, hi]` at `digits` decimals (`sign`: with + on gains), "–" for a figure not there."""
    if e is None:
        return "–"
    f = f"+.{digits}f" if sign else f".{digits}f"
    return f"{e.value:{f}} [{e.lo:{f}}, {e.hi:{f}}]"


def collapse_lines(r: ExperimentResult) -> list[str]:
    """One sentence per collapsed student: indistinguishable from chance or a constant predictor on
    test (`chance_reason`), or predictions that do not follow its own labels."""
    return [
        f"Collapsed student {s.source} · {s.trained}: {s.collapsed}; its PGR does not measure "
        "weak-to-strong generalization."
        for s in r.students
        if s.collapsed
    ]


def dev_regime_lines(r: ExperimentResult) -> list[str]:
    """The regime of each supervisor with a dev floor, in words, against the dev ceiling."""
    if r.ceiling_dev is None:
        return []
    floors = {s.source: s.floor_dev for s in r.sources if s.floor_dev is not None}
    return regime_lines(floors, r.ceiling_dev, "the ceiling on dev", chance_by_source(r, dev=True))


def ensemble_table(r: ExperimentResult) -> list[str]:
    """How each ensemble was built and chosen, and what each member cost."""
    lines = md_head(
        "Ensembles (members are the weak model; the test split plays no part in any choice):",
        ["source", "members used / trained", "vote", "chosen on", "s per member", "e_t", "α_t"],
    )
    for e in r.ensembles:
        per = sum(e.seconds) / max(1, len(e.seconds))
        errs = ", ".join(f"{x:.3f}" for x in e.errors) or "-"
        alphas = ", ".join(f"{x:.2f}" for x in e.alphas) or "-"
        lines.append(
            f"| {e.source} | {e.used} / {e.trained} | {e.vote} | {e.selected_on} | {per:.1f} "
            f"| {errs} | {alphas} |"
        )
    return lines


def pgr_defined(floor: Estimate, ceiling: Estimate) -> bool:
    """PGR measures how much of a positive floor→ceiling gap the student recovers."""
    return ceiling.value > floor.value


#: The smallest ceiling − floor gap (accuracy, or AUC for PGR on AUC) read as a weak-to-strong
#: regime. PGR divides by the gap, so one accuracy point of the student moves PGR by 0.01 / gap:
#: at 0.03, by a third of PGR's 0-to-1 range, while a student's accuracy moves by more than a point
#: between seeds alone (SD 0.016-0.018 on SciQ, docs/results.md). A large test split makes even a
#: one-point gap "beyond the intervals"; this keeps such a gap from reading as a regime.
MIN_GAP = 0.03
#: A model that names one class for at least this share of rows is a constant predictor.
ONE_CLASS = 0.95
#: p(true) whose middle 90% of rows lie in a band narrower than this (one of the ten confidence
#: bins of the report's ECE) say nearly the same thing about every row. Named in a chance reason,
#: never a reason alone: an under-confident model can still be right (docs/training.md, "Logconf
#: under fine-tuning": an xent student with p(true) spread 0.023 and dev accuracy 0.562).
MIN_SPREAD = 0.05


def regime(floor: Estimate, ceiling: Estimate, chance: bool = False) -> str:
    """Is there a weak-to-strong gap for PGR to measure? `chance`: the floor or the ceiling is
    indistinguishable from chance or a constant predictor (`chance_reason`), so none can be read;
    `above`: the supervisor is at least as accurate as the ceiling (PGR undefined); `overlap`: the
    ceiling is higher but within the 95% intervals (PGR mostly noise); `small`: beyond the intervals
    but by less than MIN_GAP; `gap`: beyond the intervals and by at least MIN_GAP."""
    if chance:
        return "chance"
    if not pgr_defined(floor, ceiling):
        return "above"
    if ceiling.lo <= floor.hi:
        return "overlap"
    return "gap" if ceiling.value - floor.value >= MIN_GAP else "small"


def chance_reason(
    p: ArrayLike,
    gold: ArrayLike,
    groups: ArrayLike | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    rows: str = "test rows",
) -> str | None:
    """Why a model (a floor, ceiling, student, label source or judge: its p(true) `p` on rows with
    `gold`) is indistinguishable from chance or from a constant predictor, or None when it is not.
    A constant predictor always names gold's majority class (0.5 of the rows on binarized data).
    Said of a model that names one class for at least ONE_CLASS of its rows, or whose accuracy's 95%
    interval contains the constant's accuracy, or whose ROC AUC's contains 0.5; every finding is
    named, with p(true) that barely vary (MIN_SPREAD) beside them. Intervals resample questions
    (`groups`). Far below chance is informative (inverted), not flagged."""
    p, g = np.asarray(p, dtype=float), np.asarray(gold, dtype=float)
    said_true = float(np.mean(p > 0.5))
    if max(said_true, 1.0 - said_true) >= ONE_CLASS:
        name = "true" if said_true >= 0.5 else "false"
        return f"predicts {name} for {max(said_true, 1.0 - said_true):.0%} of {rows}"
    found = []
    share = float(np.mean(g > 0.5))
    constant = max(share, 1.0 - share)
    acc = mean_ci(correct(p, g), groups, n_boot=n_boot, seed=seed)
    if acc.lo <= constant <= acc.hi:
        found.append(f"accuracy {acc} contains a constant predictor's {constant:.3f}")
    roc = auc_ci(p, g, groups, n_boot=n_boot, seed=seed)
    if roc.lo <= 0.5 <= roc.hi:  # nan (gold of one class) compares False: not flagged
        found.append(f"AUC {roc} contains chance's 0.5")
    lo, hi = np.percentile(p, [5, 95])
    if found and hi - lo < MIN_SPREAD:
        found.append(f"p(true) of 90% of {rows} within [{lo:.3f}, {hi:.3f}], a spread under {MIN_SPREAD:g}")
    return "; ".join(found) or None


def unrelated_reason(
    agree: ArrayLike, groups: ArrayLike | None = None, *, n_boot: int = 1000, seed: int = 0
) -> str | None:
    """Why a student learned nothing its labels say, or None: `agree` is per-row agreement (0/1) of
    its val predictions with the labels it trained on, and its 95% interval reaches 0.5 (or below).
    No gold needed. A logconf student locked onto a split of its own stays balanced, so the
    constant-predictor test of `chance_reason` misses it (docs/training.md, "Logconf under
    fine-tuning"); this does not."""
    acc = mean_ci(agree, groups, n_boot=n_boot, seed=seed)
    if acc.lo <= 0.5:
        return f"its val predictions agree with its own labels {acc}, no more than chance"
    return None


#: How the console marks a PGR whose regime is not a plain gap (`regime`), and the footnote that
#: says what the mark means; results.md says it in words in the cell.
REGIME_MARKS: dict[str, tuple[str, str]] = {
    "overlap": ("¹", "no gap beyond the 95% intervals: PGR is mostly noise"),
    "small": ("²", f"gap under {MIN_GAP:g}: too small to read"),
    "chance": ("³", "at chance (floor or ceiling): PGR does not measure W2SG"),
    "above": ("n/a", "the supervisor ≥ the ceiling: no gap, PGR undefined"),
}


def pgr_cell(
    pgr: Estimate | None,
    floor: Estimate | None,
    ceiling: Estimate,
    fmt: Callable[[Estimate], str] = str,
    chance: bool = False,
    *,
    short: bool = False,
) -> str:
    """PGR as a table shows it (written by `fmt`): the estimate, said to be noise without a gap or
    below MIN_GAP, unreadable at chance (`chance`: the floor or the ceiling), n/a above the ceiling.
    `short`: the console's form, a mark of `REGIME_MARKS` instead of the words."""
    if pgr is None or floor is None:
        return "-"
    how = regime(floor, ceiling, chance)
    if short:
        return "n/a" if how == "above" else fmt(pgr) + REGIME_MARKS.get(how, ("",))[0]
    return {
        "gap": fmt(pgr),
        "overlap": f"{fmt(pgr)} (no gap)",
        "small": f"{fmt(pgr)} (gap < {MIN_GAP:g})",
        "chance": f"{fmt(pgr)} (at chance)",
        "above": "n/a (supervisor ≥ ceiling)",
    }[how]


def regime_footnotes(cells: str) -> list[str]:
    """The footnotes of the marks (`REGIME_MARKS`) that appear in a console table's `cells`."""
    return [f"{mark}{':' * (len(mark) > 1)} {text}" for mark, text in REGIME_MARKS.values() if mark in cells]


def short_estimate(e: Estimate | None) -> str:
    """An estimate in a narrow console cell: the interval to two decimals without leading zeros,
    "0.594 [.57,.62]" (results.md has three)."""
    if e is None:
        return "-"

    def bound(x: float) -> str:
        return f"{x:.2f}".replace("0.", ".", 1) if abs(x) < 1 else f"{x:.2f}"

    return f"{e.value:.3f} [{bound(e.lo)},{bound(e.hi)}]"


def regime_lines(
    floors: dict[str, Estimate],
    ceiling: Estimate,
    what: str = "the ceiling",
    chance: Mapping[str, str] | None = None,
) -> list[str]:
    """The regime in words, one sentence per case, for every report and the console. `chance`:
    source → which of its floor and the ceiling is at chance (`chance_by_source`)."""
    chance = chance or {}
    by: dict[str, list[str]] = {"gap": [], "small": [], "overlap": [], "above": []}
    at: dict[str, list[str]] = {}
    for source, floor in floors.items():
        if source in chance:
            at.setdefault(chance[source], []).append(source)
        else:
            by[regime(floor, ceiling)].append(source)
    lines = []
    if by["gap"]:
        lines.append(
            f"Weak-to-strong gap for {', '.join(by['gap'])}: {what} ({ceiling}) is above the "
            f"supervisor beyond the 95% intervals and by at least {MIN_GAP:g} (the minimum gap), and "
            "neither is at chance, so PGR measures what the student recovers."
        )
    if by["small"]:
        lines.append(
            f"No weak-to-strong regime for {', '.join(by['small'])}: {what} ({ceiling}) is above the "
            f"supervisor beyond the 95% intervals but by less than {MIN_GAP:g} (the minimum gap), so "
            "their PGR divides by a gap too small to read."
        )
    if by["overlap"]:
        lines.append(
            f"No gap beyond the intervals for {', '.join(by['overlap'])}: {what} ({ceiling}) is higher "
            "but within the 95% intervals of the supervisor, so their PGR is mostly noise."
        )
    if by["above"]:
        lines.append(
            f"No weak-to-strong regime for {', '.join(by['above'])}: the supervisor is at least as "
            f"accurate as {what} ({ceiling}), so there is no gap to recover and PGR is undefined."
        )
    lines += [
        f"No weak-to-strong regime can be read for {', '.join(sources)}: against {what} ({ceiling}), "
        f"{who} {'are' if ' and ' in who else 'is'} indistinguishable from chance or from a constant "
        'predictor ("At chance" below), so PGR does not measure weak-to-strong generalization.'
        for who, sources in at.items()
    ]
    return lines


def chance_by_source(r: ExperimentResult, dev: bool = False) -> dict[str, str]:
    """Source → which of its floor and the ceiling is at chance, on test (`dev`: on dev), for the
    sources with either (`regime_lines`' `chance`); empty for a results.json from before the flags."""
    return {src: " and ".join(who) for src, who in _at_chance(r, dev).items()}


def _at_chance(r: ExperimentResult, dev: bool = False) -> dict[str, list[str]]:
    ceiling = r.ceiling_chance_dev if dev else r.ceiling_chance
    out = {}
    for s in r.sources:
        floor = s.floor_chance_dev if dev else s.floor_chance
        if who := [w for w, flag in (("the supervisor", floor), ("the ceiling", ceiling)) if flag]:
            out[s.source] = who
    return out


def chance_lines(r: ExperimentResult, where: str = "") -> list[str]:
    """One sentence per model at chance (`chance_reason`): the ceiling, each floor and each source's
    labels, on test and dev (`where`: e.g. " in seed 1"); students are named by `collapse_lines`."""
    flags = [("the ceiling (test)", r.ceiling_chance), ("the ceiling (dev)", r.ceiling_chance_dev)]
    for s in r.sources:
        if s.floor_split == "strong":  # floor and labels: the same predictions on the same rows
            flags.append((f"{s.source}'s floor and labels (strong split)", s.floor_chance))
        else:
            flags.append((f"{s.source}'s floor ({s.floor_split})", s.floor_chance))
            flags.append((f"{s.source}'s labels (strong split, as its students learn them)", s.labels_chance))
        flags.append((f"{s.source}'s floor (dev)", s.floor_chance_dev))
    return [f"At chance{where}: {who}: {why}." for who, why in flags if why]


def plot(r: ExperimentResult, path: Path) -> None:
    """One row per student (source, loss): its floor, the student and the ceiling on test, with
    CIs, and its PGR at the right. Rows stack downwards, so many sources stay readable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floors = {s.source: s.floor for s in r.sources}
    chance = chance_by_source(r)
    rows = list(reversed(r.students))  # first student on top
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.42 * len(rows)))
    y = range(len(rows))

    def dots(offset: float, ests: list[Estimate], label: str, marker: str) -> None:
        err = [[e.value - e.lo for e in ests], [e.hi - e.value for e in ests]]
        ys = [i + offset for i in y]
        ax.errorbar([e.value for e in ests], ys, xerr=err, fmt=marker, capsize=3, label=label)

    dots(0.2, [floors[s.source] for s in rows], "supervisor (floor)", "s")
    dots(0.0, [s.accuracy for s in rows], "strong student", "o")
    dots(-0.2, [r.ceiling for _ in rows], "strong ceiling", "^")
    ax.set_yticks(list(y), [f"{s.source} · {s.trained}" for s in rows], fontsize=8)
    for i, s in zip(y, rows, strict=True):
        at = s.source in chance
        shown = pgr_cell(s.pgr, floors[s.source], r.ceiling, lambda e: f"PGR {e.value:.2f}", at)
        ax.annotate(shown, (1.01, i), xycoords=("axes fraction", "data"), va="center", fontsize=8)
    ax.set_xlabel("test accuracy (95% CIs over questions)")
    ax.set_ylim(-0.6, len(rows) - 0.4)
    save_plot(fig, ax, "", r.run_id, path, legend="below")


def save_plot(
    fig: Any, ax: Any, ylabel: str, title: str, path: Path, legend: str, bottom: float = 0.0
) -> None:
    """Label, legend (a loc, "outside" right, "below", or "" for none), title, save. `bottom`: the
    share of the figure's height kept free under the axes for a footnote."""

    ax.set_ylabel(ylabel)
    if legend == "outside":  # right of the axes: never over a point
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    elif legend == "below":  # under the axes, in one row
        ax.legend(
            fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.4 / fig.get_figheight()), ncol=3
        )
    elif legend:
        ax.legend(fontsize=8, loc=legend)
    ax.set_title(title, fontsize=8)
    close_plot(fig, path, bottom)


def write_folder(folder: Path, texts: dict[str, str], plot: Callable[[Path], None] | None, png: str) -> None:
    """A report folder: its text files (name → text), then its plot (`png`) when there is one."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / name).write_text(text)
    if plot is not None:
        plot(folder / png)


def close_plot(fig: Any, path: Path, bottom: float = 0.0) -> None:
    """Lay out, save (legends and notes outside the axes included) and close a figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def wrap_label(name: str, width: int = 14) -> str:
    """Break long source names at underscores so x labels do not collide."""
    return "\n".join(p.replace(" ", "_") for p in textwrap.wrap(name.replace("_", " "), width))


def write_report(r: ExperimentResult, run_dir: Path) -> None:
    (run_dir / "results.md").write_text(markdown_table(r))
    plot(r, run_dir / "results.png")


def seeds_table(r: SeedsResult) -> str:
    """The aggregate over seeds (a row per student), then each seed's own figures."""
    floors = {f.source: f for f in r.sources}
    chance = seeds_chance(r)
    runs = ", ".join(f"`{x.result.run_id}`" for x in r.runs)
    lines = [
        f"Seeds aggregate `{r.run_id}`: seeds {', '.join(map(str, r.seeds))} (runs {runs}), "
        f"{r.seconds:.0f} s. "
        "Each figure: the mean over seeds [95% interval from a two-level bootstrap: seeds with replacement, "
        "then each drawn seed's questions], and the SD between seeds. PGR is the PGR of the seed-mean "
        "accuracies (AUC-PGR: of the seed-mean AUCs), its interval from the same draws.",
        "",
        "| label source | loss | floor | student | ceiling | PGR "
        "| floor AUC | student AUC | ceiling AUC | AUC-PGR |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in r.students:
        f = floors[s.source]
        floor, floor_auc = seed_cell(f.floor), seed_cell(f.floor_auc)
        if f.floor_split != "test":
            floor, floor_auc = floor + " †", floor_auc + " †"
        student = seed_cell(s.accuracy) + (" (collapsed)" if s.collapsed else "")
        lines.append(
            f"| {s.source} | {s.trained} | {floor} | {student} | {seed_cell(r.ceiling)} "
            f"| {pgr_cell(s.pgr, f.floor.mean, r.ceiling.mean, chance=s.source in chance)} | {floor_auc} "
            f"| {seed_cell(s.auc)} | {seed_cell(r.ceiling_auc)} "
            f"| {pgr_cell(s.auc_pgr, f.floor_auc.mean, r.ceiling_auc.mean, chance=s.source in chance)} |"
        )
    if any(f.floor_split != "test" for f in r.sources):
        lines += ["", "† no test predictions: the supervisor's floor is on the strong split it labelled."]
    lines += ["", *seeds_notes(r)]
    return "\n".join([*lines, "", *per_seed_table(r)]) + "\n"


def seeds_notes(r: SeedsResult) -> list[str]:
    """Under a seeds aggregate, in words (results.md and the console): the regime against the
    seed-mean ceiling, each seed's models at chance, each collapsed student."""
    chance = seeds_chance(r)
    floors = {f.source: f.floor.mean for f in r.sources}
    lines = regime_lines(floors, r.ceiling.mean, "the seed-mean ceiling", chance)
    lines += [line for x in r.runs for line in chance_lines(x.result, f" in seed {x.seed}")]
    return lines + [
        f"Collapsed student {s.source} · {s.trained} in seed {seed}: {why}."
        for s in r.students
        for seed, why in s.collapsed.items()
    ]


def seeds_chance(r: SeedsResult) -> dict[str, str]:
    """Source → which of its floor and the ceiling is at chance in some seed, and in which seeds
    (`chance_by_source` of each seed's run): a seed mean over a chance seed reads no regime either."""
    out = {}
    for f in r.sources:
        seeds: dict[str, list[int]] = {}
        for x in r.runs:
            for who in _at_chance(x.result).get(f.source, []):
                seeds.setdefault(who, []).append(x.seed)
        if seeds:
            said = [f"{who} (seed{'s' * (len(k) > 1)} {', '.join(map(str, k))})" for who, k in seeds.items()]
            out[f.source] = " and ".join(said)
    return out


def seed_cell(x: SeedStat) -> str:
    return f"{x.mean} SD {x.sd:.3f}"


def per_seed_table(r: SeedsResult) -> list[str]:
    """A row per seed and student: each run's own figures, with intervals over its questions."""
    lines = md_head(
        "Per seed (each run's own figures; 95% CIs over its questions):",
        ["seed", "label source", "loss", "floor", "student", "ceiling", "PGR", "student AUC", "AUC-PGR"],
    )
    for run in r.runs:
        e = run.result
        floors = {f.source: f for f in e.sources}
        chance = chance_by_source(e)
        for s in e.students:
            f = floors[s.source]
            floor = f"{f.floor}" + ("" if f.floor_split == "test" else " †")
            at = s.source in chance
            auc_ceiling = e.ceiling_auc
            auc_pgr = "-" if auc_ceiling is None else pgr_cell(s.auc_pgr, f.floor_auc, auc_ceiling, chance=at)
            lines.append(
                f"| {run.seed} | {s.source} | {s.trained} | {floor} | {s.accuracy} | {e.ceiling} "
                f"| {pgr_cell(s.pgr, f.floor, e.ceiling, chance=at)} | {cell(s.auc)} | {auc_pgr} |"
            )
    return lines


def plot_seeds(r: SeedsResult, path: Path) -> None:
    """One row per student: floor, student and ceiling as seed means with their two-level 95%
    intervals, and each seed's student as a small grey dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floors = {f.source: f.floor for f in r.sources}
    rows = list(reversed(r.students))  # first student on top
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.42 * len(rows)))
    for offset, label, marker, stats in (
        (0.2, "supervisor (floor)", "s", [floors[s.source] for s in rows]),
        (0.0, "strong student", "o", [s.accuracy for s in rows]),
        (-0.2, "strong ceiling", "^", [r.ceiling for _ in rows]),
    ):
        ests = [x.mean for x in stats]
        err = [[e.value - e.lo for e in ests], [e.hi - e.value for e in ests]]
        ax.errorbar(
            [e.value for e in ests],
            [i + offset for i in range(len(rows))],
            xerr=err,
            fmt=marker,
            capsize=3,
            label=label,
        )
    for i, s in enumerate(rows):
        ax.plot(s.accuracy.per_seed, [i] * len(s.accuracy.per_seed), ".", color="grey", markersize=4)
    ax.set_yticks(list(range(len(rows))), [f"{s.source} · {s.trained}" for s in rows], fontsize=8)
    ax.set_xlabel(
        f"test accuracy, mean over {len(r.seeds)} seeds (95% CIs over seeds and questions; dots: seeds)"
    )
    ax.set_ylim(-0.6, len(rows) - 0.4)
    save_plot(fig, ax, "", r.run_id, path, legend="below")


def write_seeds_report(r: SeedsResult, run_dir: Path) -> None:
    (run_dir / "results.md").write_text(seeds_table(r))
    plot_seeds(r, run_dir / "results.png")


def icl_table(r: ICLResult) -> str:
    """One row per (selector, confidence), one column per demo label source."""
    sources = list(dict.fromkeys(row.source for row in r.rows if row.source != "-"))
    cell = {(row.selector, row.confidence, row.source): row for row in r.rows}
    lines = [
        f"ICL run `{r.run_id}`: {r.model}, k = {r.k} demos, pool {r.sizes['pool']} rows, "
        f"test {r.sizes['test']} rows, {r.seconds:.0f} s. ICL accuracy on test, 95% CIs from a bootstrap "
        "over questions; gold demos give the ICL ceiling. Each cell: accuracy [CI] · AUC · mean p('1').",
        "",
        "| selector | confidence | " + " | ".join(sources) + " |",
        "|---|---|" + "---|" * len(sources),
        "| (pool label accuracy) | | " + " | ".join(f"{r.source_accuracy[s]:.3f}" for s in sources) + " |",
    ]
    for row in r.rows:
        if row.source == "-":
            lines.append(f"| {row.selector} | | " + " | ".join([_icl_cell(row)] * len(sources)) + " |")
    for sel, conf in dict.fromkeys((row.selector, row.confidence) for row in r.rows if row.source != "-"):
        vals = [_icl_cell(cell[(sel, conf, s)]) if (sel, conf, s) in cell else "-" for s in sources]
        lines.append(f"| {sel} | {'yes' if conf else 'no'} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def _icl_cell(row: ICLRow) -> str:
    return f"{row.accuracy} · {row.auc:.3f} · {row.mean_p:.2f}"


def plot_icl(r: ICLResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in r.rows if row.source != "-"]
    groups = list(dict.fromkeys((row.selector, row.confidence) for row in rows))
    sources = list(dict.fromkeys(row.source for row in rows))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(groups)), 4))
    width = 0.8 / max(1, len(sources))
    for j, src in enumerate(sources):
        got = {(row.selector, row.confidence): row.accuracy for row in rows if row.source == src}
        xs = [i + (j - (len(sources) - 1) / 2) * width for i, g in enumerate(groups) if g in got]
        ests = [got[g] for g in groups if g in got]
        err = [[e.value - e.lo for e in ests], [e.hi - e.value for e in ests]]
        ax.bar(xs, [e.value for e in ests], width=width, yerr=err, capsize=2, label=src)
    for row in r.rows:
        if row.source == "-":
            ax.axhline(row.accuracy.value, ls="--", c="grey", lw=1, label=row.selector)
    ax.set_xticks(range(len(groups)), [f"{s}\n{'conf' if c else ''}" for s, c in groups], fontsize=8)
    ax.set_ylim(0.3, 1.0)
    save_plot(fig, ax, "ICL test accuracy", r.run_id, path, legend="upper right")


def write_icl_report(r: ICLResult, run_dir: Path) -> None:
    (run_dir / "results.md").write_text(icl_table(r))
    plot_icl(r, run_dir / "results.png")
