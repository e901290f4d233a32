"""`w2sg debaters evaluate`: the experiment trained debaters serve (Khan et al. 2024). After the
rounds (trained now or loaded), round 0 (the config's debater) and every round's model meet in a
cross-play `w2sg tournament` on held-out questions: each one's rating, the judge's accuracy when it
argues the truth and when it lies, and how both moved from round 0 (does a more persuasive honest
debater help the judge more than a more persuasive liar hurts it?). With `evaluation.student`, each
round's debater in self-play labels a `w2sg run`'s graph splits through the judge and a student
learns from the labels. Everything lands in `<run>/evaluation/`: the tournament's and the run's
folders (each resumes after a kill), results.md with the plot, and results.json, written last."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from agents.config import resolve_spec
from agents.names import resolve_model_path
from oversight.experiments.debaters.config import DebaterTrainConfig
from oversight.experiments.debaters.report import write_evaluation_report
from oversight.experiments.debaters.results import DebaterEvaluation, DebaterTrainResult, RoundEvaluation
from oversight.experiments.debaters.runner import round_rows, train_debaters
from oversight.experiments.run.config import GRAPH_SPLITS, RunConfig
from oversight.experiments.run.results import PipelineResult
from oversight.experiments.run.runner import prepare_run_splits, run_pipeline
from oversight.experiments.tournament.config import TournamentConfig
from oversight.experiments.tournament.ratings import Match, against_reference, estimates
from oversight.experiments.tournament.results import TournamentResult
from oversight.experiments.tournament.runner import (
    match_label_config,
    recorded_matches,
    run_tournament,
    stored_matches,
)
from oversight.labelling.label import label, trained_on
from w2sg.data import Example, split_by_question
from w2sg.datasets import load_split
from w2sg.metrics import Estimate
from w2sg.run_folder import load_complete, mark_complete


def held_out(cfg: DebaterTrainConfig, taken: set[str]) -> list[Example]:
    """The tournament's rows: `evaluation.questions` questions of the split outside `taken`."""
    rows = [e for e in load_split(cfg.dataset, cfg.split, seed=cfg.seed) if e.qid not in taken]
    what = f"questions in {cfg.split} that no round debated and the judge never trained on"
    return split_by_question(rows, {"eval": cfg.evaluation.questions}, seed=cfg.seed, what=what)["eval"]


async def self_play(tcfg: TournamentConfig, rows: list[Example], out: Path) -> list[Match]:
    """Each player against itself on the tournament's rows (`selfplay.sqlite`, resumable): the
    judge's accuracy when one debater argues both sides, Khan et al.'s measure."""
    matches = []
    for p in tcfg.debaters:
        lc = match_label_config(tcfg, p, p, "correct", out / "selfplay.sqlite")
        run = await label(lc, rows=rows)
        if run.failed:
            raise RuntimeError(
                f"self-play of {p}: {run.failed} debates failed after retries; rerun to retry them"
            )
        matches += stored_matches(lc, p, p, rows)
    return matches


def round_evaluation(
    k: int, model: str, t: TournamentResult, moved: dict[str, Estimate], run: PipelineResult | None
) -> RoundEvaluation:
    """Round k's figures (its debater: `model`): from the tournament, from `against_reference`
    (self-play, and against r0), and from the student run."""
    p = f"r{k}"
    figures: dict[str, object] = {
        "model": model,
        "rating": t.rating[p],
        "elo": t.elo[p],
        "judge_self": moved[f"{p}|self"],
        "judge_truth": t.accuracy_by_debater[f"{p}|truth"],
        "judge_lie": t.accuracy_by_debater[f"{p}|lie"],
        **{what: moved.get(f"{p}|{what}") for what in ("honest", "lying", "help", "hurt", "net")},
    }
    if run is not None:
        source = next(s for s in run.sources if s.source == p)
        student = next(s for s in run.experiment.students if s.source == p)  # the first loss and method
        figures |= {
            "labels": source.raw,
            "student": student.accuracy,
            "pgr": student.pgr,
            "student_note": student.collapsed,
        }
    return RoundEvaluation(round=k, **figures)  # type: ignore[arg-type]


def overlaps(rcfg: RunConfig | None, rounds: set[str], judge: set[str], held: set[str]) -> dict[str, int]:
    """Questions two sets share, for the reader: none puts gold into a score (the tournament's are
    drawn apart from the others, and labelling refuses rows the judge trained on)."""
    out = {"rounds ∩ judge training": len(rounds & judge)}
    if rcfg is not None:
        sp, _ = prepare_run_splits(rcfg)
        graph = {e.qid for k in GRAPH_SPLITS for e in sp[k]}
        out |= {
            "run graph splits ∩ rounds": len(graph & rounds),
            "run graph splits ∩ tournament": len(graph & held),
        }
    return out


def evaluate_debaters(
    cfg: DebaterTrainConfig, *, force: bool = False
) -> tuple[DebaterEvaluation, DebaterTrainResult, Path, bool]:
    """Train (or load) the rounds, then the evaluation (or load it, when complete and not `force`):
    its result, the training's, the evaluation folder, whether the evaluation was loaded."""
    t0 = time.perf_counter()
    trained, run_dir, _ = train_debaters(cfg)
    out = run_dir / "evaluation"
    if (done := load_complete(out, DebaterEvaluation, force)) is not None:
        return done, trained, out, True
    rounds = {e.qid for rows in round_rows(cfg).values() for e in rows}
    judge = trained_on(resolve_spec(cfg.judge, cfg.models).name)
    rows = held_out(cfg, rounds | judge)
    tcfg = cfg.tournament(run_dir)
    t, tdir, _ = run_tournament(tcfg, rows=rows, force=force)
    players = list(tcfg.debaters)
    matches = recorded_matches(tcfg, rows, tdir) + asyncio.run(self_play(tcfg, rows, out))
    ev = cfg.evaluation
    moved = estimates(matches, lambda m: against_reference(m, players), n_boot=ev.n_boot, seed=cfg.seed)
    rcfg = cfg.student_run(run_dir)
    run = run_pipeline(rcfg, resolve=resolve_model_path, force=force) if rcfg is not None else None
    result = DebaterEvaluation(
        run_id=trained.run_id,
        tournament=tdir.name,
        questions=t.questions,
        matches=t.matches,
        judge_accuracy=t.judge_accuracy["all"],
        student_run=run.run_id if run is not None else None,
        ceiling=run.experiment.ceiling if run is not None else None,
        overlap=overlaps(rcfg, rounds, judge, {e.qid for e in rows}),
        rounds=[
            round_evaluation(k, cfg.debater_after(run_dir, k).name, t, moved, run)
            for k in range(cfg.rounds + 1)
        ],
        seconds=time.perf_counter() - t0,
    )
    write_evaluation_report(result, trained, t, out)
    mark_complete(out, result)
    return result, trained, out, False
