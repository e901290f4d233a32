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
from typing import Any, NamedTuple

import numpy as np

from graphs.spec import GraphSpec
from oversight.judges import JudgeInfo, collect_transcripts, speaker_models, train_judge
from oversight.label import LabelConfig, label, require_passages
from oversight.paths import resolve_model_path
from oversight.run.config import GRAPH_SPLITS, TRAINED, RunConfig
from oversight.run.report import write_pipeline_report
from oversight.run.results import PipelineResult, SourceReport
from oversight.soft_labels import Calibrator, DawidSkene, average_weights, cross_fit, weighted_average
from oversight.store import LabelRow, LabelStore
from w2sg.data import Example, split_by_question
from w2sg.datasets import load_split
from w2sg.experiment import Fitter, save_predictions, score_models, supervise
from w2sg.metrics import Estimate, LabelQuality, accuracy, correct, label_quality, mean_ci, paired_gain
from w2sg.progress import duration, track
from w2sg.run_folder import mark_complete, open_run

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
    pool = [e for e in load_split(cfg.dataset, "train", seed=cfg.seed) if e.qid not in used]
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

    async def transcripts() -> list:
        speakers = speaker_models(graph, cfg.models)  # per-side debaters and preference models too
        try:
            return await collect_transcripts(graph, speakers, rows, concurrency=cfg.concurrency)
        finally:
            for m in speakers.values():
                await m.aclose()

    log.info("%s: transcripts of %d judge-training rows, then the judge", name, len(rows))
    jt = cfg.judge_training
    return train_judge(
        graph,
        rows,
        asyncio.run(transcripts()),
        base_path=resolve_model_path(jt.base),
        out_dir=out,
        train_cfg=jt.train.model_copy(update={"seed": cfg.seed}),
        max_length=jt.max_length,
        seed=cfg.seed,
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


def source_report(
    name: str, got: dict[str, LabelRow], info: JudgeInfo | None, sp: dict[str, list[Example]]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """p(true) per graph split, and the oversight fields of its `SourceReport` (cost per strong-split
    label; verdicts per scoring method, over every graph-split row)."""
    p = {k: np.array([got[e.id].p_true for e in sp[k]], dtype=float) for k in GRAPH_SPLITS}
    verdicts = [got[e.id].record["verdict"] for e in sp["strong"]]
    tokens = np.array([v["tokens"] for v in verdicts], dtype=float)
    seconds = np.array([v["seconds"] for v in verdicts], dtype=float)
    usd = [got[e.id].record.get("cost_usd") for e in sp["strong"]]
    methods = Counter(got[e.id].record["verdict"]["method"] for k in GRAPH_SPLITS for e in sp[k])
    fields = {"tokens": tokens, "seconds": seconds, "usd": None, "methods": dict(methods), "judge": info}
    if all(c is not None for c in usd):
        fields["usd"] = np.array(usd, dtype=float)
    return p, fields


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

    # The graphs label first: with `on_failure: drop`, the questions any of them left unlabelled
    # leave every source's splits before a weak teacher or a student sees them.
    graphs: dict[str, GraphLabels] = {}
    for name, graph in cfg.protocols.items():
        t = time.perf_counter()
        graphs[name] = oversight_labels(cfg, name, graph, sp, run_dir)
        stage_done(name, t)
    failed = {name: g.failed for name, g in graphs.items() if g.failed}
    sp, dropped = drop_failed(sp, failed)
    if dropped:
        log.warning("on_failure: drop: %d questions left out of every source (%s)", len(dropped), failed)

    t = time.perf_counter()
    fitter = Fitter(cfg, sp, resolve, weak_split="judge")
    gold, qids = fitter.gold, fitter.qids

    def quality(p: np.ndarray, split: str = "strong") -> LabelQuality:
        return label_quality(p, gold[split], qids[split], n_boot=cfg.n_boot, seed=cfg.seed)

    def per_label(x: np.ndarray) -> Estimate:
        return mean_ci(x, qids["strong"], n_boot=cfg.n_boot, seed=cfg.seed)

    labels: dict[str, dict[str, np.ndarray]] = {}
    reports: dict[str, SourceReport] = {}
    # The weak teachers label dev too (its rows need no passage); the graphs label only the graph
    # splits (no floor on dev).
    scored = ("test", "dev") if "dev" in sp else ("test",)
    teachers, _ensembles = supervise(fitter, cfg.label_sources, targets=("calib", "strong", "val", *scored))
    stage_done("weak teachers", t)
    for src, p in teachers.items():
        labels[src] = p
        reports[src] = SourceReport(source=src, kind="teacher", raw=quality(p["strong"]))
    token_rows = []
    for name, g in graphs.items():
        p, fields = source_report(name, g.rows, g.judge, sp)
        labels[name] = p
        token_rows.append((fields["tokens"], fields["seconds"]))
        info = fields["judge"]
        if info is not None:  # the judge picked its checkpoint on judge-split rows: score it on calib
            held = {"heldout_accuracy": accuracy(p["calib"], gold["calib"]), "heldout_rows": len(p["calib"])}
            info = info.model_copy(update=held)
        reports[name] = SourceReport(
            source=name,
            kind="oversight",
            raw=quality(p["strong"]),
            tokens_per_label=per_label(fields["tokens"]),
            seconds_per_label=per_label(fields["seconds"]),
            usd_per_label=per_label(fields["usd"]) if fields["usd"] is not None else None,
            judge=info,
            methods=fields["methods"],
            failed=g.failed,
            usage=g.usage,
        )

    calibrated = {src: _calibrate(cfg, p, gold["calib"]) for src, p in labels.items()}
    for src, p in calibrated.items():
        if cfg.calibration is not None:
            reports[src].calibrated = quality(p["strong"])
    if cfg.aggregate:
        combined = list(calibrated)  # every teacher and protocol; not the aggregates made below
        stack = {k: np.stack([calibrated[s][k] for s in combined]) for k in GRAPH_SPLITS}
        cost = (sum(t for t, _ in token_rows), sum(s for _, s in token_rows)) if token_rows else None
        for how in cfg.aggregate:
            note = None
            if how == "average":
                raw = np.stack([labels[s]["calib"] for s in combined])
                oof = (
                    raw
                    if cfg.calibration is None
                    else cross_fit(
                        raw, gold["calib"], qids["calib"], cfg.calibration, folds=cfg.folds, seed=cfg.seed
                    )
                )
                wts, note = average_weights(oof, gold["calib"])
                agg = {k: weighted_average(stack[k], wts) for k in GRAPH_SPLITS}
            else:  # label-free, so fitted once on every graph split's rows
                ds = DawidSkene().fit(np.concatenate([stack[k] for k in GRAPH_SPLITS], axis=1))
                agg = {k: ds(stack[k]) for k in GRAPH_SPLITS}
            if note:
                log.warning("agg_%s: %s", how, note)
            labels[f"agg_{how}"] = calibrated[f"agg_{how}"] = agg
            reports[f"agg_{how}"] = SourceReport(
                source=f"agg_{how}",
                kind="aggregate",
                raw=quality(agg["strong"]),
                tokens_per_label=per_label(cost[0]) if cost else None,
                seconds_per_label=per_label(cost[1]) if cost else None,
                note=note,
            )

    # The baseline: a judge that hears no speaker (the blind judge).
    blind = next((n for n, g in cfg.protocols.items() if g.speaker_model is None), None)
    if blind is not None:
        base = correct(labels[blind]["strong"], gold["strong"])
        for src, rep in reports.items():
            if src != blind:
                ok = correct(labels[src]["strong"], gold["strong"])
                rep.vs_blind = paired_gain(ok, base, qids["strong"], n_boot=cfg.n_boot, seed=cfg.seed)

    t = time.perf_counter()
    chosen = calibrated if cfg.student_labels == "calibrated" else labels
    supervisors = {
        src: {k: v for k, v in chosen[src].items() if k in ("strong", "val", *scored)} for src in reports
    }
    scores = score_models(fitter, supervisors)
    stage_done("students and ceiling", t)
    experiment = scores.result(rid, _ensembles, {k: len(v) for k, v in sp.items()}, time.perf_counter() - t0)
    result = PipelineResult(
        run_id=rid,
        experiment=experiment,
        sources=list(reports.values()),
        stage_seconds=stages,
        passage_questions=passage_questions,
        dropped_questions=dropped,
    )
    save_predictions(run_dir, sp, scores.preds)
    np.savez(
        run_dir / "labels.npz",
        **{f"{k}__ids": np.array([e.id for e in sp[k]]) for k in (*GRAPH_SPLITS, *scored)},
        **{f"{src}__{k}": v for src, d in labels.items() for k, v in d.items()},
        **{
            f"{src}__{k}__cal": v
            for src, d in calibrated.items()
            if cfg.calibration is not None and (src in teachers or src in cfg.protocols)
            for k, v in d.items()
        },
    )
    try:  # a plotting failure must not cost the trained students: the numbers are saved either way
        write_pipeline_report(result, run_dir)
    except Exception:
        log.exception("could not write the report in %s; results.json has every number", run_dir)
    mark_complete(run_dir, result)
    progress.close()
    return result


def _calibrate(cfg: RunConfig, p: dict[str, np.ndarray], gold_calib: np.ndarray) -> dict[str, np.ndarray]:
    if cfg.calibration is None:
        return p
    cal = Calibrator(cfg.calibration).fit(p["calib"], gold_calib)
    return {k: cal(v) for k, v in p.items()}
