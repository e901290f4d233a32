"""`w2sg debaters train`: K rounds of expert iteration. Each round the current debater argues both
sides of new questions with best-of-N turns the judge ranks (`graphs.bestofn.RECORD` collects every
turn's candidates), each turn whose best and worst candidates the judge tells apart gives a DPO
pair (`pairs-rK.jsonl`), and DPO trains the next debater (`adapter-rK/`, `model-rK/`, figures in
`round-rK.json`). A killed run resumes: a round with its `round-rK.json` is done and skipped, and
a round whose pairs were written trains without debating again."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

from agents import get_model
from agents.backends.hf import hf_source
from agents.config import ModelSpec
from agents.model import closing_all
from graphs.bestofn import RECORD, Candidates
from graphs.debate import DebateConfig
from graphs.invoke import invoke_recorded
from oversight.experiments.debaters.config import DebaterTrainConfig
from oversight.experiments.debaters.dpo import Pair, train_dpo
from oversight.experiments.debaters.report import write_report
from oversight.experiments.debaters.results import DebaterTrainResult, RoundFigures
from w2sg.data import Example, split_by_question
from w2sg.datasets import load_split
from w2sg.progress import track
from w2sg.run_folder import mark_complete, open_run, write_atomic
from w2sg.tracking import Tracker, tracked


def round_rows(cfg: DebaterTrainConfig) -> dict[str, list[Example]]:
    """Each round's rows ("r1", "r2", ...): `questions` new questions per round, seeded."""
    rows = load_split(cfg.dataset, cfg.split, seed=cfg.seed)
    sizes = {f"r{k}": cfg.questions for k in range(1, cfg.rounds + 1)}
    return split_by_question(rows, sizes, seed=cfg.seed, what=f"questions in {cfg.split}")  # type: ignore[arg-type]


def pairs_of(row: str, turns: list[Candidates]) -> list[Pair]:
    """A pair per turn whose best and worst candidates the judge rates apart (ties give none)."""
    out = []
    for t in sorted(turns, key=lambda t: (t.side, t.prompt)):  # concurrent sides: a fixed order
        hi = max(range(len(t.scores)), key=lambda i: t.scores[i])
        lo = min(range(len(t.scores)), key=lambda i: t.scores[i])
        if t.scores[hi] - t.scores[lo] > 0:
            out.append(
                Pair(row=row, side=t.side, prompt=t.prompt, chosen=t.texts[hi], rejected=t.texts[lo],
                     chosen_p=t.scores[hi], rejected_p=t.scores[lo])
            )  # fmt: skip
    return out


async def collect_pairs(
    spec: DebateConfig, models: dict[str, ModelSpec], rows: list[Example], concurrency: int
) -> tuple[list[Pair], int]:
    """Debate every row; its preference pairs in row order, and the number of best-of-N turns."""
    built = {role: get_model(s) for role, s in spec.specs(models).items()}
    gate = asyncio.Semaphore(concurrency)
    progress = track("debates", len(rows), unit="rows")

    async def one(e: Example) -> list[Candidates]:
        async with gate:
            turns: list[Candidates] = []
            RECORD.set(turns)  # this row's task only: gather gives each its own context
            state = await invoke_recorded(graph, spec.start(e))
            if "error" in state:
                raise RuntimeError(f"row {e.id}: the debate failed ({state['error']})")
            progress.advance()
            return turns

    async with closing_all(built):
        graph = spec.build(built)
        per_row = await asyncio.gather(*(one(e) for e in rows))
    progress.close()
    return [p for e, turns in zip(rows, per_row, strict=True) for p in pairs_of(e.id, turns)], sum(
        map(len, per_row)
    )


def run_round(
    cfg: DebaterTrainConfig, k: int, rows: list[Example], run_dir: Path, tracker: Tracker
) -> RoundFigures:
    """Round `k`: its pairs (debated now, or read when an earlier run wrote them), then DPO (its
    steps' curves to `tracker`)."""
    debater = cfg.debater_after(run_dir, k - 1)
    pairs_path = run_dir / f"pairs-r{k}.jsonl"
    seconds: float | None = None
    turns = 0
    if pairs_path.exists():
        lines = pairs_path.read_text().splitlines()
        turns = json.loads(lines[0])["turns"]
        pairs = [Pair.model_validate_json(line) for line in lines[1:]]
    else:
        t0 = time.perf_counter()
        spec = cfg.debate(debater, k)
        pairs, turns = asyncio.run(collect_pairs(spec, cfg.models, rows, cfg.concurrency))
        seconds = time.perf_counter() - t0
        head = json.dumps({"turns": turns})  # the first line: what the figures need besides the pairs
        write_atomic(pairs_path, "\n".join([head, *(p.model_dump_json() for p in pairs)]) + "\n")
    if not pairs:
        raise ValueError(
            f"round {k}: none of {turns} turns had a judge preference gap > 0, so no DPO pair "
            "(raise best_of_n or temperature, or use a judge that reads the arguments)"
        )
    dpo = train_dpo(
        hf_source(debater.name), pairs, cfg.dpo, run_dir, f"r{k}", seed=cfg.seed + k, tracker=tracker
    )
    shutil.rmtree(run_dir / f"trainer-r{k}", ignore_errors=True)  # TRL's scratch folder
    return RoundFigures(
        round=k,
        questions=len({e.qid for e in rows}),
        turns=turns,
        pairs=len(pairs),
        debate_seconds=seconds,
        dpo=dpo,
        model=f"hf/{(run_dir / f'model-r{k}').resolve()}",
        adapter=str(run_dir / f"adapter-r{k}"),
    )


def train_debaters(cfg: DebaterTrainConfig, *, force: bool = False) -> tuple[DebaterTrainResult, Path, bool]:
    """Every round not finished yet, then the report; the result, its folder, whether it was loaded.
    Each round's DPO steps and figures go to `cfg.tracking` (TensorBoard / wandb)."""
    splits = round_rows(cfg)
    rid, run_dir, finished = open_run(cfg, splits, DebaterTrainResult, force)
    if finished is not None:
        return finished, run_dir, True
    rounds = []
    with tracked(cfg.tracking, run_dir, cfg) as tracker:
        for k in range(1, cfg.rounds + 1):
            done = run_dir / f"round-r{k}.json"
            if done.exists() and not force:
                rounds.append(RoundFigures.model_validate_json(done.read_text()))
                continue
            figures = run_round(cfg, k, splits[f"r{k}"], run_dir, tracker)
            mark_complete(run_dir, figures, done.name)  # last: the round's other files are whole
            rounds.append(figures)
            d = figures.dpo
            tracker.log(
                "rounds", k, {"pairs": figures.pairs, "dpo_loss": d.loss_last, "reward_margin": d.margin_last}
            )
    result = DebaterTrainResult(run_id=rid, rounds=rounds)
    write_report(result, run_dir)
    mark_complete(run_dir, result)
    return result, run_dir, False
