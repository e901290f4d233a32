"""Play a tournament: every ordered pair of distinct debaters on every row, both speaking positions,
each match one debate labelled through the durable store (`oversight.labelling.label`), so a killed or
repeated tournament redoes no debate. Then rate the debaters and write the report."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

from graphs.types import SIDES, Side
from oversight.experiments.tournament.config import TournamentConfig
from oversight.experiments.tournament.ratings import (
    Match,
    accuracy_by_debater,
    bradley_terry_elo,
    estimates,
    judge_accuracy,
    openskill_ratings,
    win_matrix,
)
from oversight.experiments.tournament.results import TournamentResult
from oversight.labelling.label import LabelConfig, label, select_rows, selection
from oversight.labelling.store import LabelStore
from w2sg.data import Example
from w2sg.progress import track
from w2sg.run_folder import mark_complete, open_run
from w2sg.tracking import NullTracker, Tracker, tracked


def match_label_config(
    cfg: TournamentConfig, correct: str, incorrect: str, first: Side, store: Path
) -> LabelConfig:
    """One match-up as a labelling run: its rows are every row of the tournament."""
    return LabelConfig(
        name=f"{correct}-vs-{incorrect}",
        dataset=cfg.dataset,
        split=cfg.split,
        questions=cfg.questions,
        seed=cfg.seed,
        models=cfg.models,
        graph=cfg.match(correct, incorrect, first),
        concurrency=cfg.concurrency,
        store=store,
    )


def schedule(cfg: TournamentConfig) -> list[tuple[str, str, Side]]:
    """(debater arguing correct, debater arguing incorrect, side speaking first) for every match-up."""
    return [(a, b, first) for a, b in itertools.permutations(cfg.debaters, 2) for first in SIDES]


def stored_matches(lc: LabelConfig, a: str, b: str, rows: list[Example]) -> list[Match]:
    """The matches of one match-up (`lc`: `a` argues correct, `b` incorrect) its store holds."""
    store = LabelStore(lc.store)
    try:
        got = store.p_true(lc.protocol, selection(lc, rows)[2])
    finally:
        store.close()
    out = []
    for e in rows:
        if (p := got.get(e.id)) is None:
            continue
        score = 1.0 if p > 0.5 else 0.0 if p < 0.5 else 0.5  # the correct side wins when p(true) > 0.5
        truthful = a if e.label >= 0.5 else b
        right = 0.5 if p == 0.5 else float((p > 0.5) == (e.label >= 0.5))
        out.append(Match(e.qid, a, b, score, truthful, right))
    return out


def recorded_matches(cfg: TournamentConfig, rows: list[Example], run_dir: Path) -> list[Match]:
    """Every match a tournament's folder holds, read from its store: no model is built."""
    store = run_dir / "labels.sqlite"
    return [
        m
        for a, b, first in schedule(cfg)
        for m in stored_matches(match_label_config(cfg, a, b, first, store), a, b, rows)
    ]


async def play(
    cfg: TournamentConfig, rows: list[Example], run_dir: Path, tracker: Tracker | None = None
) -> tuple[list[Match], int]:
    """Every match, from the store where it was played before; and how many debates this call ran.
    After each match-up, `tracker` gets the debates so far and the judge's accuracy on them."""
    tracker = tracker or NullTracker()
    store_path = run_dir / "labels.sqlite"
    matches: list[Match] = []
    ran = 0
    failed: list[str] = []
    progress = track(f"tournament {cfg.name}", len(schedule(cfg)), unit="match-ups")
    for i, (a, b, first) in enumerate(schedule(cfg), 1):
        lc = match_label_config(cfg, a, b, first, store_path)
        run = await label(lc, rows=rows)
        ran += run.labelled
        if run.failed:  # the other match-ups still play; a rerun retries only the failed debates
            failed.append(f"{a} vs {b} ({first} first): {run.failed}")
        matches += stored_matches(lc, a, b, rows)
        progress.advance()
        right = sum(m.judge_right for m in matches) / max(len(matches), 1)
        tracker.log("tournament", i, {"debates": len(matches), "debates_run": ran, "judge_accuracy": right})
    progress.close(failed=bool(failed))
    if failed:
        raise RuntimeError(
            f"debates failed after their retries ({'; '.join(failed)}); rerun to retry them "
            f"(the {ran} debates that ended are kept in {store_path})"
        )
    return matches, ran


def rate(cfg: TournamentConfig, matches: list[Match]) -> dict[str, object]:
    """Ratings, Elo, win rates and judge accuracies, each with bootstrap intervals over questions."""
    players = list(cfg.debaters)
    boot = {"n_boot": cfg.n_boot, "seed": cfg.seed}
    # Each resample is rated in its own match order, so the interval holds the spread that match
    # order leaves (with tau=0 the first games weigh most) as well as that of the questions; the
    # point estimate averages over `orders` orders.
    shuffles = itertools.count(cfg.seed + 1)
    rating = estimates(
        matches, lambda m: openskill_ratings(m, players, orders=1, seed=next(shuffles)), **boot
    )
    for p, mu in openskill_ratings(matches, players, orders=cfg.orders, seed=cfg.seed).items():
        rating[p] = rating[p].model_copy(update={"value": mu})
    point = {p: e.value for p, e in rating.items()}
    return {
        "rating": rating,
        "elo": estimates(matches, lambda m: bradley_terry_elo(m, players), **boot),
        "win_rate": win_matrix(matches, players),
        "judge_accuracy": estimates(matches, lambda m: judge_accuracy(m, point), **boot),
        "accuracy_by_debater": estimates(matches, lambda m: accuracy_by_debater(m, players), **boot),
    }


def final_figures(result: TournamentResult) -> dict[str, float]:
    """The tracker's summary of a tournament: each debater's rating and Elo, the judge's accuracy."""
    figures = {"matches": float(result.matches), "draws": float(result.draws)}
    for kind, values in (
        ("rating", result.rating),
        ("elo", result.elo),
        ("judge_accuracy", result.judge_accuracy),
    ):
        figures |= {f"{kind}/{k}": e.value for k, e in values.items()}
    return figures


def run_tournament(
    cfg: TournamentConfig, *, force: bool = False, rows: list[Example] | None = None
) -> tuple[TournamentResult, Path, bool]:
    """Play (or load, when complete and not `force`) the tournament and write its report; the
    result, its run folder, and whether it was loaded. `rows`: these rows, not the config's
    selection (`w2sg debaters evaluate` draws them apart from the rounds' questions)."""
    from oversight.experiments.tournament.report import write_report

    t0 = time.perf_counter()
    if rows is None:
        rows, _ = select_rows(match_label_config(cfg, *list(cfg.debaters)[:2], "correct", Path("unused")))
    rid, run_dir, finished = open_run(cfg, {"rows": rows}, TournamentResult, force)
    if finished is not None:
        return finished, run_dir, True
    with tracked(cfg.tracking, run_dir, cfg) as tracker:
        matches, ran = asyncio.run(play(cfg, rows, run_dir, tracker))
        rated = rate(cfg, matches)
        result = TournamentResult(
            run_id=rid,
            debaters=list(cfg.debaters),
            questions=len({e.qid for e in rows}),
            matches=len(matches),
            draws=sum(m.score == 0.5 for m in matches),
            debates_run=ran,
            seconds=time.perf_counter() - t0,  # debates and ratings
            **rated,  # type: ignore[arg-type]
        )
        tracker.summary(final_figures(result))
    write_report(result, run_dir)
    mark_complete(run_dir, result)
    return result, run_dir, False
