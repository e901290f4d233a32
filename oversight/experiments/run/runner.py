"""`w2sg run CONFIG`: the whole experiment of DESIGN.md in one command.

The test split's questions (those with a passage when the data has passages) → the gold budget
every weak supervisor shares (the `judge` split: trained judges and weak teachers learn from the
same questions) → labels from each oversight graph (blind judge, consultancy, debate,
interaction) and from the weak teachers (single, bagging, boosting) on the `strong` and `val`
splits → calibration on the `calib` split and aggregation across sources → a strong student per
label source, a ceiling on gold → one report (label quality, student accuracy, PGR, cost per
label, all with CIs; plots).

The four graph splits come from the test split (offline, only SciQ's test file carries support
passages); students are tested on questions of the train split (a test row needs no passage).
Every stage is reused when it exists: trained judges (their folder), labels (the SQLite store, so
a killed run resumes), strong features (the feature cache).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from agents.names import resolve_model_path
from graphs.spec import GraphSpec
from oversight.experiments.run.config import GRAPH_SPLITS, TRAINED, RunConfig
from oversight.experiments.run.report import write_pipeline_report
from oversight.experiments.run.results import PipelineResult, SourceReport
from oversight.labelling.judges import JudgeInfo, train_judge, transcripts_to_judge
from oversight.labelling.label import LabelConfig, label, require_passages
from oversight.labelling.open_sides import open_sides
from oversight.labelling.soft_labels import (
    Calibrator,
    DawidSkene,
    average_weights,
    cross_fit,
    weighted_average,
)
from oversight.labelling.store import LabelRow, LabelStore
from w2sg.data import Example, split_by_question
from w2sg.datasets import load_split, train_pool
from w2sg.experiment import Fitter, finish_curves, save_predictions, score_models, supervise
from w2sg.metrics import (
    Estimate,
    LabelQuality,
    accuracy,
    correct,
    label_quality,
    mean_ci,
    paired_gain,
    paired_permutation,
)
from w2sg.progress import duration, track
from w2sg.run_folder import mark_complete, open_run
from w2sg.tracking import tracked

log = logging.getLogger(__name__)


def prepare_run_splits(cfg: RunConfig) -> tuple[dict[str, list[Example]], int | None]:
    """The graph splits from the test split's questions with a passage when the data has passages
    (the speakers' privileged context), from all of them when it has none; the students' test
    split from the train split's other questions, and the dev split (when `sizes.dev` is set) from
    what test leaves of them; and how many questions have a passage when the graph splits are drawn
    from those (what caps them, named in the report), else None. The pool depends on the data, not
    on the protocols, so every config on one dataset labels the same questions (a blind-judge grid
    cell and a debate cell are compared on the same rows). A protocol that needs a passage
    (`GraphSpec.needs_passage`) on data without one is a DataError before any model runs."""
    where = cfg.dataset.title
    test_rows = load_split(cfg.dataset, "test", seed=cfg.seed)
    s = cfg.sizes
    n_all = len({e.qid for e in test_rows})
    with_passage = [e for e in test_rows if e.support]
    if with_passage:
        pool, what = with_passage, f"questions with a passage in {where} test (of its {n_all} questions)"
    else:
        pool, what = test_rows, f"questions in {where} test"
        require_passages(cfg.protocols, f"{n_all} questions in {where} test")
    sp = split_by_question(
        pool, {"judge": s.judge, "calib": s.calib, "strong": s.strong, "val": s.val}, seed=cfg.seed, what=what
    )
    used = {e.qid for e in pool}
    train = load_split(cfg.dataset, "train", seed=cfg.seed)
    pool = train_pool(train, used, where, refuse_same=False)  # test is drawn from the rest
    # dev is drawn after test in one shuffle: with a count, test keeps its questions without dev.
    held = {"test": s.test, **({"dev": s.dev} if s.dev is not None else {})}
    sp |= split_by_question(
        pool, held, seed=cfg.seed, what=f"questions in {where} train not in its test split"
    )
    return sp, len(used) if with_passage else None


def _judge(cfg: RunConfig, name: str, graph: GraphSpec, rows: list[Example], run_dir: Path) -> JudgeInfo:
    """Train (or reuse) the `trained` judge of one graph on gold of the judge split."""
    out = run_dir / "judges" / name
    if (out / "judge.json").exists():
        return JudgeInfo.model_validate_json((out / "judge.json").read_text())

    log.info("%s: transcripts of %d judge-training rows, then the judge", name, len(rows))
    jt = cfg.judge_training
    states = asyncio.run(transcripts_to_judge(graph, rows, cfg.models, concurrency=cfg.concurrency))
    # The judge's curves: its own folder's curves.png, and a tracker run of its own (`tracking`).
    with tracked(cfg.tracking, out, cfg, name=f"{run_dir.name}-judge-{name}") as tracker:
        return train_judge(
            graph,
            rows,
            states,
            base_path=resolve_model_path(jt.base),
            out_dir=out,
            train_cfg=jt.train.model_copy(update={"seed": cfg.seed}),
            max_length=jt.max_length,
            seed=cfg.seed,
            tracker=tracker,
        )


class GraphLabels(NamedTuple):
    """What one oversight graph gave: its 'ok' labels by example id, the rows left without one
    after retries, its trained judge, and its models' usage (retries, timeouts, failures)."""

    rows: dict[str, LabelRow]
    failed: list[str]
    judge: JudgeInfo | None
    usage: dict[str, dict[str, float]]


def oversight_labels(
    cfg: RunConfig, name: str, graph: GraphSpec, sp: dict[str, list[Example]], run_dir: Path
) -> GraphLabels:
    """Label every graph-split row with one graph (resuming from the run's store)."""
    info = None
    if graph.judge_model == TRAINED:
        info = _judge(cfg, name, graph, sp["judge"], run_dir)
        graph = graph.with_judge(f"classifier/{info.path}")
    lcfg = LabelConfig(
        name=name,
        dataset=cfg.dataset,
        seed=cfg.seed,
        models=cfg.models,
        concurrency=cfg.concurrency,
        store=run_dir / "labels.sqlite",
        graph=graph,
        tracking=cfg.tracking,  # labelling progress beside the store (oversight.labelling.tracking)
    )
    rows = [e for k in GRAPH_SPLITS for e in sp[k]]
    run = asyncio.run(label(lcfg, rows=rows))
    log.info("%s: %d labelled, %d failed, %.1f s", name, run.labelled, run.failed, run.seconds)
    store = LabelStore(lcfg.store)
    try:
        got = {r.example_id: r for r in store.rows(lcfg.protocol, run.config_hash) if r.status == "ok"}
    finally:
        store.close()
    failed = [e.id for e in rows if e.id not in got]
    if failed and cfg.on_failure == "fail":
        raise RuntimeError(
            f"protocol {name!r}: {len(failed)} of {len(rows)} rows have no label after retries (e.g. "
            f"{failed[0]}); the failures and their transcripts are in {lcfg.store}. Rerun to retry them, "
            "or set `on_failure: drop` to leave their questions out of every source"
        )
    return GraphLabels(got, failed, info, run.usage)


class SourceCost(NamedTuple):
    """What one oversight source's labels cost, per strong-split label, and how they were scored."""

    tokens: np.ndarray
    seconds: np.ndarray
    usd: np.ndarray | None  # None unless every label's models were priced
    methods: dict[str, int]  # verdicts per scoring method, over every graph-split row


def source_report(
    got: dict[str, LabelRow], sp: dict[str, list[Example]]
) -> tuple[dict[str, np.ndarray], SourceCost]:
    """p(true) per graph split, and what the source's labels cost (`SourceCost`)."""
    p = {k: np.array([got[e.id].p_true for e in sp[k]], dtype=float) for k in GRAPH_SPLITS}
    verdicts = [got[e.id].record["verdict"] for e in sp["strong"]]
    usd = [got[e.id].record.get("cost_usd") for e in sp["strong"]]
    methods = Counter(got[e.id].record["verdict"]["method"] for k in GRAPH_SPLITS for e in sp[k])
    return p, SourceCost(
        tokens=np.array([v["tokens"] for v in verdicts], dtype=float),
        seconds=np.array([v["seconds"] for v in verdicts], dtype=float),
        usd=np.array(usd, dtype=float) if all(c is not None for c in usd) else None,
        methods=dict(methods),
    )


def drop_failed(
    sp: dict[str, list[Example]], failed: dict[str, list[str]]
) -> tuple[dict[str, list[Example]], list[str]]:
    """`on_failure: drop`: the graph splits without every question some graph left a row of
    unlabelled (whole questions, so each keeps its correct and its wrong answer), for every source
    alike; and those questions."""
    ids = {i for rows in failed.values() for i in rows}
    qids = sorted({e.qid for k in GRAPH_SPLITS for e in sp[k] if e.id in ids})
    out = {k: [e for e in v if e.qid not in qids] if k in GRAPH_SPLITS else v for k, v in sp.items()}
    return out, qids


Labels = dict[str, dict[str, np.ndarray]]  # source → split → p(true)


class Sources:
    """Every label source of a run as it is built up: its p(true) per split (raw and calibrated)
    and its `SourceReport`, scored against gold of the run's splits with question-level CIs."""

    def __init__(self, cfg: RunConfig, fitter: Fitter):
        self.cfg, self.gold, self.qids = cfg, fitter.gold, fitter.qids
        self.labels: Labels = {}
        self.calibrated: Labels = {}
        self.reports: dict[str, SourceReport] = {}
        self.costs: list[SourceCost] = []

    def quality(self, p: np.ndarray, split: str = "strong") -> LabelQuality:
        cfg = self.cfg
        return label_quality(p, self.gold[split], self.qids[split], n_boot=cfg.n_boot, seed=cfg.seed)

    def per_label(self, x: np.ndarray) -> Estimate:
        return mean_ci(x, self.qids["strong"], n_boot=self.cfg.n_boot, seed=self.cfg.seed)

    def add_teachers(self, teachers: Labels) -> None:
        for src, p in teachers.items():
            self.labels[src] = p
            self.reports[src] = SourceReport(source=src, kind="teacher", raw=self.quality(p["strong"]))

    def add_graph(self, name: str, g: GraphLabels, sp: dict[str, list[Example]]) -> None:
        p, cost = source_report(g.rows, sp)
        self.labels[name] = p
        self.costs.append(cost)
        info = g.judge
        if info is not None:  # the judge picked its checkpoint on judge-split rows: score it on calib
            held = {
                "heldout_accuracy": accuracy(p["calib"], self.gold["calib"]),
                "heldout_rows": len(p["calib"]),
            }
            info = info.model_copy(update=held)
        self.reports[name] = SourceReport(
            source=name,
            kind="oversight",
            raw=self.quality(p["strong"]),
            tokens_per_label=self.per_label(cost.tokens),
            seconds_per_label=self.per_label(cost.seconds),
            usd_per_label=self.per_label(cost.usd) if cost.usd is not None else None,
            judge=info,
            methods=cost.methods,
            failed=g.failed,
            usage=g.usage,
            open_sides=open_sides(
                [g.rows[e.id].record for e in sp["strong"]],
                p["strong"],
                self.gold["strong"],
                self.qids["strong"],
                n_boot=self.cfg.n_boot,
                seed=self.cfg.seed,
            ),
        )

    def calibrate(self) -> None:
        self.calibrated = {src: _calibrate(self.cfg, p, self.gold["calib"]) for src, p in self.labels.items()}
        for src, p in self.calibrated.items():
            if self.cfg.calibration is not None:
                self.reports[src].calibrated = self.quality(p["strong"])

    def aggregate(self) -> None:
        """One more source per `aggregate:` entry, combining every teacher and protocol."""
        cfg, combined = self.cfg, list(self.calibrated)  # not the aggregates made here
        stack = {k: np.stack([self.calibrated[s][k] for s in combined]) for k in GRAPH_SPLITS}
        cost = (sum(c.tokens for c in self.costs), sum(c.seconds for c in self.costs)) if self.costs else None
        for how in cfg.aggregate:
            agg, note = self._combine(how, combined, stack)
            if note:
                log.warning("agg_%s: %s", how, note)
            self.labels[f"agg_{how}"] = self.calibrated[f"agg_{how}"] = agg
            self.reports[f"agg_{how}"] = SourceReport(
                source=f"agg_{how}",
                kind="aggregate",
                raw=self.quality(agg["strong"]),
                tokens_per_label=self.per_label(cost[0]) if cost else None,
                seconds_per_label=self.per_label(cost[1]) if cost else None,
                note=note,
            )

    def _combine(
        self, how: str, combined: list[str], stack: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], str | None]:
        cfg, gold = self.cfg, self.gold
        if how == "average":
            raw = np.stack([self.labels[s]["calib"] for s in combined])
            oof = (
                raw
                if cfg.calibration is None
                else cross_fit(
                    raw, gold["calib"], self.qids["calib"], cfg.calibration, folds=cfg.folds, seed=cfg.seed
                )
            )
            wts, note = average_weights(oof, gold["calib"])
            return {k: weighted_average(stack[k], wts) for k in GRAPH_SPLITS}, note
        # label-free, so fitted once on every graph split's rows
        ds = DawidSkene().fit(np.concatenate([stack[k] for k in GRAPH_SPLITS], axis=1))
        return {k: ds(stack[k]) for k in GRAPH_SPLITS}, None

    def compare_to_blind(self) -> None:
        """Each source's paired accuracy gain over the baseline: a judge that hears no speaker."""
        cfg, gold = self.cfg, self.gold["strong"]
        blind = next((n for n, g in cfg.protocols.items() if g.speaker_model is None), None)
        if blind is None:
            return
        base = correct(self.labels[blind]["strong"], gold)
        for src, rep in self.reports.items():
            if src != blind:
                ok = correct(self.labels[src]["strong"], gold)
                rep.vs_blind = paired_gain(ok, base, self.qids["strong"], n_boot=cfg.n_boot, seed=cfg.seed)
                rep.vs_blind_p = paired_permutation(
                    ok, base, self.qids["strong"], n_perm=cfg.n_boot, seed=cfg.seed
                )

    def supervisors(self, splits: tuple[str, ...]) -> Labels:
        """What each source's student learns from and is selected on (raw or calibrated labels)."""
        chosen = self.calibrated if self.cfg.student_labels == "calibrated" else self.labels
        return {src: {k: v for k, v in chosen[src].items() if k in splits} for src in self.reports}

    def save(
        self, run_dir: Path, sp: dict[str, list[Example]], splits: tuple[str, ...], own: set[str]
    ) -> None:
        """labels.npz: row ids per split, each source's p(true), and the calibrated labels of the
        sources in `own` (teachers and protocols; an aggregate is calibrated already)."""
        np.savez(
            run_dir / "labels.npz",
            **{f"{k}__ids": np.array([e.id for e in sp[k]]) for k in splits},
            **{f"{src}__{k}": v for src, d in self.labels.items() for k, v in d.items()},
            **{
                f"{src}__{k}__cal": v
                for src, d in self.calibrated.items()
                if self.cfg.calibration is not None and src in own
                for k, v in d.items()
            },
        )


def label_graphs(
    cfg: RunConfig, sp: dict[str, list[Example]], run_dir: Path, done: Callable[[str, float], None]
) -> dict[str, GraphLabels]:
    """Every oversight graph's labels. They label first: with `on_failure: drop`, the questions any
    of them left unlabelled leave every source's splits before a weak teacher or student sees them."""
    graphs: dict[str, GraphLabels] = {}
    for name, graph in cfg.protocols.items():
        t = time.perf_counter()
        graphs[name] = oversight_labels(cfg, name, graph, sp, run_dir)
        done(name, t)
    return graphs


def run_pipeline(
    cfg: RunConfig, *, resolve: Callable[[str], str] = str, force: bool = False
) -> PipelineResult:
    """Run (or load, when complete and not `force`) the end-to-end experiment."""
    cfg.check_one_seed()
    t0 = time.perf_counter()
    sp, passage_questions = prepare_run_splits(cfg)
    rid, run_dir, finished = open_run(cfg, sp, PipelineResult, force)
    if finished is not None:
        return finished
    stages: dict[str, float] = {}
    progress = track(f"run {rid}", len(cfg.protocols) + 2, unit="stages")

    def stage_done(stage: str, t: float) -> None:
        stages[stage] = time.perf_counter() - t
        progress.advance()
        progress.note(f"{stage} done in {duration(stages[stage])}")

    graphs = label_graphs(cfg, sp, run_dir, stage_done)
    failed = {name: g.failed for name, g in graphs.items() if g.failed}
    sp, dropped = drop_failed(sp, failed)
    if dropped:
        log.warning("on_failure: drop: %d questions left out of every source (%s)", len(dropped), failed)

    # Every model trained from here on logs its curves (curves.png, and `cfg.tracking`).
    with tracked(cfg.tracking, run_dir, cfg) as tracker:
        t = time.perf_counter()
        fitter = Fitter(cfg, sp, resolve, weak_split="judge", tracker=tracker)
        # The weak teachers label dev too (its rows need no passage); the graphs label only the graph
        # splits (no floor on dev).
        scored = ("test", "dev") if "dev" in sp else ("test",)
        teachers, ensembles = supervise(
            fitter, cfg.label_sources, targets=("calib", "strong", "val", *scored)
        )
        stage_done("weak teachers", t)
        sources = Sources(cfg, fitter)
        sources.add_teachers(teachers)
        for name, g in graphs.items():
            sources.add_graph(name, g, sp)
        sources.calibrate()
        if cfg.aggregate:
            sources.aggregate()
        sources.compare_to_blind()

        t = time.perf_counter()
        scores = score_models(fitter, sources.supervisors(("strong", "val", *scored)))
        stage_done("students and ceiling", t)
        experiment = scores.result(
            rid, ensembles, {k: len(v) for k, v in sp.items()}, time.perf_counter() - t0
        )
        result = PipelineResult(
            run_id=rid,
            experiment=experiment,
            sources=list(sources.reports.values()),
            stage_seconds=stages,
            passage_questions=passage_questions,
            dropped_questions=dropped,
        )
        save_predictions(run_dir, sp, scores.preds)
        sources.save(run_dir, sp, (*GRAPH_SPLITS, *scored), own={*teachers, *cfg.protocols})
        try:  # a plotting failure must not cost the trained students: the numbers are saved either way
            write_pipeline_report(result, run_dir)
        except Exception:
            log.exception("could not write the report in %s; results.json has every number", run_dir)
        finish_curves(fitter, run_dir, experiment)
        mark_complete(run_dir, result)
        progress.close()
        return result


def _calibrate(cfg: RunConfig, p: dict[str, np.ndarray], gold_calib: np.ndarray) -> dict[str, np.ndarray]:
    if cfg.calibration is None:
        return p
    cal = Calibrator(cfg.calibration).fit(p["calib"], gold_calib)
    return {k: cal(v) for k, v in p.items()}
