"""`w2sg icl CONFIG`: ICL accuracy per demo selector × label source (× confidence), against the
ICL ceiling (gold demos) and zero-shot, with bootstrap CIs, in the common report format."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from w2sg.data import Example, data_info, fingerprint, label_source, split_by_question
from w2sg.experiment import WEAK, Fitter, W2SGConfig, accuracy_estimate, prepare_splits, supervise
from w2sg.features import cached_features
from w2sg.icl import ChoiceModel, ICLConfig, build_messages, score_prompts, select_demos
from w2sg.metrics import auc, correct
from w2sg.report import write_icl_report
from w2sg.results import ICLResult, ICLRow
from w2sg.run_folder import DONE, load_complete, mark_complete, start_run

log = logging.getLogger(__name__)


def icl_run_id(cfg: W2SGConfig, train_run: str) -> str:
    """The ICL folder's name inside its training run's folder `train_run` (named by config and data)."""
    blob = (cfg.icl.model_dump_json() if cfg.icl else "") + train_run
    return f"icl-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def _subset(rows: list[Example], n: int | None, seed: int) -> list[Example]:
    return rows if n is None else split_by_question(rows, {"s": n}, seed=seed)["s"]


def source_labels(
    cfg: W2SGConfig,
    sp: dict[str, list[Example]],
    pool: list[Example],
    resolve: Callable[[str], str],
    train_dir: Path,
) -> dict[str, np.ndarray]:
    """p(true) of each ICL label source on the pool rows. Computed supervisors (weak teacher,
    ensembles) come from the training run's supervisors.npz when it exists, else are trained."""
    icl = cfg.icl or ICLConfig()
    computed_names = {WEAK, *(e.source for e in cfg.ensembles)}
    need = [s for s in icl.label_sources if s in computed_names]
    saved: dict[str, dict[str, float]] = {}
    npz = train_dir / "supervisors.npz"
    if need and npz.exists() and (train_dir / DONE).exists():
        z = np.load(npz)
        for s in need:
            if f"{s}__strong" in z.files:
                saved[s] = dict(zip(z["strong__ids"].tolist(), z[f"{s}__strong"].tolist(), strict=True))
    missing = [s for s in need if s not in saved]
    if missing:
        log.info("training supervisors %s for the demo labels (no finished training run found)", missing)
        computed, _ = supervise(Fitter(cfg, sp, resolve), missing)
        for s in missing:
            saved[s] = dict(zip([e.id for e in sp["strong"]], computed[s]["strong"].tolist(), strict=True))
    out = {}
    for s in icl.label_sources:
        if s in saved:
            out[s] = np.array([saved[s][e.id] for e in pool])
        else:  # gold or a recorded p(true) column; label_source names the row on a missing value
            out[s] = np.asarray(label_source(pool, s), dtype=float)
    return out


class ICLJob(NamedTuple):
    """One row of the table: a (selector, source, confidence) and its prompts, one per test question."""

    selector: str
    source: str
    confidence: bool
    prompts: list[list[dict[str, str]]]
    demo_accuracy: float | None  # of the demonstrations' labels against gold; None: zero-shot

    @property
    def key(self) -> str:
        return f"{self.selector}__{self.source}__{'conf' if self.confidence else 'plain'}"


class Scored(NamedTuple):
    probs: np.ndarray
    tokens: int
    seconds: float


def run_icl(
    cfg: W2SGConfig, model: ChoiceModel, *, resolve: Callable[[str], str] = str, force: bool = False
) -> ICLResult:
    """Score every (selector, source, confidence) on the test subset; reuse a complete run folder."""
    cfg.check_one_seed()
    icl = cfg.icl
    if icl is None:
        raise ValueError("the config has no `icl:` section")
    t0 = time.perf_counter()
    sp = prepare_splits(cfg)
    train_run = cfg.run_id(fingerprint(sp))
    rid = f"{train_run}/{icl_run_id(cfg, train_run)}"
    run_dir = cfg.out_dir / rid
    if (finished := load_complete(run_dir, ICLResult, force)) is not None:
        return finished
    pool = _subset(sp["strong"], icl.pool_questions, cfg.seed)
    test = _subset(sp["test"], icl.test_questions, cfg.seed)
    gold_pool = np.asarray(label_source(pool, "gold"))
    gold_test = np.asarray(label_source(test, "gold"))
    test_qids = np.array([e.qid for e in test])
    labels = source_labels(cfg, sp, pool, resolve, cfg.out_dir / train_run)
    jobs = icl_jobs(cfg, icl, pool, test, labels, resolve)
    scored = asyncio.run(_score_jobs(model, [j.prompts for j in jobs]))
    result = ICLResult(
        run_id=rid,
        model=icl.model if isinstance(icl.model, str) else str(icl.model.get("name", "")),
        k=icl.k,
        sizes={"pool": len(pool), "test": len(test)},
        source_accuracy={s: float(np.mean((v > 0.5) == (gold_pool > 0.5))) for s, v in labels.items()},
        rows=[icl_row(job, got, gold_test, test_qids, cfg) for job, got in zip(jobs, scored, strict=True)],
        seconds=time.perf_counter() - t0,
    )
    used = {"pool": pool, "test": test}
    start_run(run_dir, cfg, data_info(used, fingerprint(used)))
    write_icl_report(result, run_dir)
    np.savez(
        run_dir / "predictions.npz",
        ids=np.array([e.id for e in test]),
        qids=test_qids,
        gold=gold_test,
        **{job.key: got.probs for job, got in zip(jobs, scored, strict=True)},
    )
    mark_complete(run_dir, result)
    return result


def icl_jobs(
    cfg: W2SGConfig,
    icl: ICLConfig,
    pool: list[Example],
    test: list[Example],
    labels: dict[str, np.ndarray],
    resolve: Callable[[str], str],
) -> list[ICLJob]:
    """One job per table row: zero-shot, then every (selector, source, confidence)."""
    gold_pool = np.asarray(label_source(pool, "gold"))
    pool_emb = query_emb = None
    if {"topk", "votek"} & set(icl.selectors):
        path = resolve(icl.embedder)
        emb = cached_features(path, [*pool, *test], cfg.cache_dir, pooling="mean", max_length=128).numpy()
        pool_emb, query_emb = emb[: len(pool)], emb[len(pool) :]
    jobs: list[ICLJob] = []
    if icl.zero_shot:
        prompts = [build_messages([], q, confidence=False, instruction=icl.instruction) for q in test]
        jobs.append(ICLJob("zero-shot", "-", False, prompts, None))
    for sel in icl.selectors:
        shared = None  # label-blind selectors pick the same demos for every source
        for src in icl.label_sources:
            if sel == "balanced" or shared is None:
                picks = select_demos(
                    sel,
                    pool,
                    labels[src],
                    test,
                    icl.k,
                    seed=cfg.seed,
                    pool_emb=pool_emb,
                    query_emb=query_emb,
                    votek_size=icl.votek_size,
                    votek_neighbors=icl.votek_neighbors,
                )
                shared = None if sel == "balanced" else picks
            used = np.concatenate([np.asarray(p, dtype=int) for p in picks])
            demo_acc = float(np.mean((labels[src][used] > 0.5) == (gold_pool[used] > 0.5)))
            for conf in icl.confidence:
                demos = [[(pool[i], float(labels[src][i])) for i in p] for p in picks]
                prompts = [
                    build_messages(d, q, confidence=conf, instruction=icl.instruction)
                    for d, q in zip(demos, test, strict=True)
                ]
                jobs.append(ICLJob(sel, src, conf, prompts, demo_acc))
    return jobs


def icl_row(job: ICLJob, got: Scored, gold: np.ndarray, qids: np.ndarray, cfg: W2SGConfig) -> ICLRow:
    return ICLRow(
        selector=job.selector,
        source=job.source,
        confidence=job.confidence,
        accuracy=accuracy_estimate(correct(got.probs, gold), qids, cfg),
        auc=auc(got.probs, gold),
        mean_p=float(got.probs.mean()),
        demo_label_accuracy=job.demo_accuracy,
        prompt_tokens=got.tokens,
        seconds=got.seconds,
    )


async def _score_jobs(model: ChoiceModel, jobs: Sequence[list[list[dict[str, str]]]]) -> list[Scored]:
    out = []
    for prompts in tqdm(jobs, desc="icl", unit="config"):
        t0 = time.perf_counter()
        probs, tokens = await score_prompts(model, prompts)
        out.append(Scored(probs, tokens, time.perf_counter() - t0))
    return out
