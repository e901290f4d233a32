"""Seeds as an axis of any W2SG experiment (`w2sg train`, `w2sg run`): every seed is an ordinary
run of the config with `seed` set (its own folder, reused when complete: a Slurm array of
`--set seed=N` runs fills them), then an aggregate in a folder of its own, `<name>-seeds-<hash>`,
computed from the per-row predictions the seed runs saved.

Each figure's aggregate is its mean over seeds, with a 95% interval from a two-level bootstrap:
draw the seeds with replacement, then each drawn seed's questions with replacement (an occurrence
of a seed drawn twice gets its own question resample), and average. PGR is the PGR of the
seed-mean accuracies (AUC-PGR of the seed-mean AUCs); its interval comes from the same draws,
floor, student and ceiling resampled together, except that a floor on the strong split (a
supervisor with no test predictions) resamples its own questions under the same seed draw.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from w2sg.experiment import STRONG, W2SGCore
from w2sg.metrics import (
    Estimate,
    auc_bootstrap,
    bootstrap_means,
    correct,
    percentile_interval,
    pgr_draws,
)
from w2sg.report import write_seeds_report
from w2sg.results import (
    ExperimentResult,
    SeedRun,
    SeedsResult,
    SeedsSource,
    SeedsStudent,
    SeedStat,
    StudentName,
)
from w2sg.run_folder import is_main_process, load_complete, mark_complete, start_run, wait_for_main

log = logging.getLogger(__name__)
C = TypeVar("C", bound=W2SGCore)


@dataclass(frozen=True)
class Preds:
    """One model's p(true) on one split of one seed's run, with the split's gold and questions."""

    p: np.ndarray
    gold: np.ndarray
    qids: np.ndarray
    split: str


@dataclass(frozen=True)
class Drawn:
    """A model's figure in each seed, and the two-level bootstrap draws of its mean over seeds."""

    per_seed: np.ndarray
    draws: np.ndarray
    rows: int

    def stat(self) -> SeedStat:
        lo, hi = percentile_interval(self.draws)
        mean = Estimate(value=float(self.per_seed.mean()), lo=lo, hi=hi, n=self.rows)
        sd = float(self.per_seed.std(ddof=1)) if len(self.per_seed) > 1 else float("nan")
        return SeedStat(mean=mean, sd=sd, per_seed=self.per_seed.tolist())


def run_seeds(cfg: C, run_one: Callable[[C], ExperimentResult], *, force: bool = False) -> SeedsResult:
    """Run (or load) every seed of `cfg.seeds` with `run_one` (`run_experiment`, or the
    experiment of `run_pipeline`), then aggregate them (or load the complete aggregate)."""
    if not cfg.seeds:
        raise ValueError("seeds: give at least one seed to run")
    t0 = time.perf_counter()
    runs = []
    for s in cfg.seeds:
        log.info("seed %d (%d of %d)", s, len(runs) + 1, len(cfg.seeds))
        runs.append(SeedRun(seed=s, result=run_one(cfg.model_copy(update={"seed": s, "seeds": None}))))
    rid = seeds_run_id(cfg.name, [r.result.run_id for r in runs])
    run_dir = cfg.out_dir / rid
    if (finished := load_complete(run_dir, SeedsResult, force)) is not None:
        return finished
    start_run(run_dir, cfg, {"runs": {str(r.seed): r.result.run_id for r in runs}})
    columns = [load_columns(cfg.out_dir / r.result.run_id) for r in runs]
    result = aggregate(rid, runs, columns, n_boot=cfg.n_boot)
    result = result.model_copy(update={"seconds": time.perf_counter() - t0})
    if is_main_process():  # under torchrun every process aggregates the same files; one writes
        write_seeds_report(result, run_dir)
        mark_complete(run_dir, result)
    wait_for_main()
    return result


def seeds_run_id(name: str, run_ids: Sequence[str]) -> str:
    """`<name>-seeds-<hash>` of the per-seed run ids, in order: each names its config and data, so
    the aggregate moves with any of them."""
    return f"{name}-seeds-{hashlib.sha256('|'.join(run_ids).encode()).hexdigest()[:10]}"


def load_columns(run_dir: Path) -> dict[str, Preds]:
    """Every model's p(true) saved by one run (predictions.npz): the ceiling, each student and each
    floor on test; a floor with no test predictions on the strong split."""
    path = run_dir / "predictions.npz"
    z = np.load(path)
    if "qids" not in z.files:
        raise ValueError(f"{path}: written before question ids were saved; rerun that seed with --force")
    gold, qids = z["gold"], z["qids"]
    cols = {
        k: Preds(z[k], gold, qids, "test")
        for k in z.files
        if k == "ceiling" or k.startswith(("floor__", "student__"))
    }
    for k in z.files:
        if k.startswith(f"{STRONG}floor__"):
            strong = (z[f"{STRONG}gold"], z[f"{STRONG}qids"])
            cols[k.removeprefix(STRONG)] = Preds(z[k], *strong, "strong")
    return cols


def draw_runs(
    runs: list[SeedRun], columns: list[dict[str, Preds]], *, n_boot: int, seed: int = 0
) -> tuple[dict[str, Drawn], dict[str, Drawn]]:
    """`draw_seeds` of every model the seed runs trained (ceiling, floors, students), after checking
    each seed saved their predictions."""
    first = runs[0].result
    names = ["ceiling", *(f"floor__{s.source}" for s in first.sources)]
    names += [s.key for s in first.students]
    for r, cols in zip(runs, columns, strict=True):
        if missing := [n for n in names if n not in cols]:
            raise ValueError(
                f"run {r.result.run_id} (seed {r.seed}) saved no predictions of {', '.join(missing)} "
                "(written before they were saved): rerun that seed with --force"
            )
    return draw_seeds(columns, names, n_boot=n_boot, seed=seed)


def aggregate(
    rid: str,
    runs: list[SeedRun],
    columns: list[dict[str, Preds]],
    *,
    n_boot: int,
    seed: int = 0,
    drawn: tuple[dict[str, Drawn], dict[str, Drawn]] | None = None,
) -> SeedsResult:
    """The aggregate of the seed runs `runs` from their saved p(true) `columns` (one dict a seed);
    `drawn`: their `draw_runs` when the caller made them already (the leaderboard reuses them)."""
    first = runs[0].result
    acc, auc = drawn or draw_runs(runs, columns, n_boot=n_boot, seed=seed)
    sources = [
        SeedsSource(
            source=s.source,
            floor_split=columns[0][f"floor__{s.source}"].split,
            floor=acc[f"floor__{s.source}"].stat(),
            floor_auc=auc[f"floor__{s.source}"].stat(),
        )
        for s in first.sources
    ]
    students = []
    for s in first.students:
        name, floor = s.key, f"floor__{s.source}"
        students.append(
            SeedsStudent(
                source=s.source,
                loss=s.loss,
                method=s.method,
                accuracy=acc[name].stat(),
                auc=auc[name].stat(),
                pgr=mean_pgr(acc[floor], acc[name], acc["ceiling"]),
                auc_pgr=mean_pgr(auc[floor], auc[name], auc["ceiling"]),
                collapsed=collapsed_seeds(s, runs),
            )
        )
    return SeedsResult(
        run_id=rid,
        seeds=[r.seed for r in runs],
        runs=runs,
        ceiling=acc["ceiling"].stat(),
        ceiling_auc=auc["ceiling"].stat(),
        sources=sources,
        students=students,
        n_boot=n_boot,
        seconds=0.0,
    )


def collapsed_seeds(who: StudentName, runs: list[SeedRun]) -> dict[int, str]:
    """Seed → why the student `who` (source, loss, method) collapsed there: each seed run's own
    flag, so the aggregate agrees with the runs' reports."""
    return {r.seed: s.collapsed for r in runs for s in r.result.students if s.key == who.key and s.collapsed}


def mean_pgr(floor: Drawn, student: Drawn, ceiling: Drawn) -> Estimate:
    """PGR of the seed means, with its interval from the same two-level draws."""
    means = [np.array([d.per_seed.mean()]) for d in (floor, student, ceiling)]
    lo, hi = percentile_interval(pgr_draws(floor.draws, student.draws, ceiling.draws))
    return Estimate(value=float(pgr_draws(*means)[0]), lo=lo, hi=hi, n=student.rows)


def draw_seeds(
    columns: list[dict[str, Preds]], names: Sequence[str], *, n_boot: int, seed: int = 0
) -> tuple[dict[str, Drawn], dict[str, Drawn]]:
    """Accuracy and AUC of each model of `names` over the seeds (one dict of columns a seed), with
    two-level bootstrap draws of their seed means. Within a seed, models on the same split share
    their question resamples (paired); every model shares the seed draws."""
    n_seeds = len(columns)
    picked = np.random.default_rng(seed).integers(0, n_seeds, size=(n_boot, n_seeds))
    acc, auc = {}, {}
    for name in names:
        figures = [
            question_draws(cols[name], n_boot, n_seeds, seed + 1 + i) for i, cols in enumerate(columns)
        ]
        rows = sum(len(cols[name].p) for cols in columns)
        acc[name] = Drawn(np.array([f[0] for f in figures]), two_level([f[2] for f in figures], picked), rows)
        auc[name] = Drawn(np.array([f[1] for f in figures]), two_level([f[3] for f in figures], picked), rows)
    return acc, auc


def question_draws(
    c: Preds, n_boot: int, slots: int, seed: int
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """A model's accuracy and AUC in one seed, and their question-bootstrap draws, (n_boot, slots)
    of each: one resample per slot of each two-level draw, so a seed drawn twice gets two. The
    split picks the stream: models on the same rows share their resamples."""
    q_seed = 1000 * seed + (c.split != "test")
    ok = correct(c.p, c.gold)
    point, boot = bootstrap_means(ok, c.qids, n_boot=n_boot * slots, seed=q_seed)
    auc_point, auc_boot = auc_bootstrap(c.p, c.gold, c.qids, n_boot=n_boot * slots, seed=q_seed)
    return float(point[0]), auc_point, boot[:, 0].reshape(n_boot, slots), auc_boot.reshape(n_boot, slots)


def two_level(draws: list[np.ndarray], picked: np.ndarray) -> np.ndarray:
    """Means over the drawn seeds: `draws[i]` (n_boot, slots) are seed i's question draws,
    `picked[b, j]` the seed in slot j of resample b; (n_boot,)."""
    stacked = np.stack(draws)
    b, j = np.indices(picked.shape)
    return stacked[picked, b, j].mean(1)
