"""`w2sg icl CONFIG`: ICL accuracy per demo selector × label source (× confidence), against the
ICL ceiling (gold demos) and zero-shot, with bootstrap CIs, in the common report format."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

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

    pool_emb = query_emb = None
    if {"topk", "votek"} & set(icl.selectors):
        path = resolve(icl.embedder)
        emb = cached_features(path, [*pool, *test], cfg.cache_dir, pooling="mean", max_length=128).numpy()
        pool_emb, query_emb = emb[: len(pool)], emb[len(pool) :]

    # One job per table row: (selector, source, confidence) -> prompts.
    jobs: list[tuple[str, str, bool, list[list[dict[str, str]]], float | None]] = []
    if icl.zero_shot:
        prompts = [build_messages([], q, confidence=False, instruction=icl.instruction) for q in test]
        jobs.append(("zero-shot", "-", False, prompts, None))
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
                prompts = [
                    build_messages(
                        [(pool[i], float(labels[src][i])) for i in p],
                        q,
                        confidence=conf,
                        instruction=icl.instruction,
                    )
                    for p, q in zip(picks, test, strict=True)
                ]
                jobs.append((sel, src, conf, prompts, demo_acc))

    scored = asyncio.run(_score_jobs(model, [j[3] for j in jobs]))
    rows = []
    for (sel, src, conf, _, demo_acc), (probs, tokens, secs) in zip(jobs, scored, strict=True):
        rows.append(
            ICLRow(
                selector=sel,
                source=src,
                confidence=conf,
                accuracy=accuracy_estimate(correct(probs, gold_test), test_qids, cfg),
                auc=auc(probs, gold_test),
                mean_p=float(probs.mean()),
                demo_label_accuracy=demo_acc,
                prompt_tokens=tokens,
                seconds=secs,
            )
        )
    result = ICLResult(
        run_id=rid,
        model=icl.model if isinstance(icl.model, str) else str(icl.model.get("name", "")),
        k=icl.k,
        sizes={"pool": len(pool), "test": len(test)},
        source_accuracy={s: float(np.mean((v > 0.5) == (gold_pool > 0.5))) for s, v in labels.items()},
        rows=rows,
        seconds=time.perf_counter() - t0,
    )
    used = {"pool": pool, "test": test}
    start_run(run_dir, cfg, data_info(used, fingerprint(used)))
    write_icl_report(result, run_dir)
    keys = [f"{sel}__{src}__{'conf' if conf else 'plain'}" for sel, src, conf, _, _ in jobs]
    np.savez(
        run_dir / "predictions.npz",
        ids=np.array([e.id for e in test]),
        qids=test_qids,
        gold=gold_test,
        **{k: probs for k, (probs, _, _) in zip(keys, scored, strict=True)},
    )
    mark_complete(run_dir, result)
    return result


async def _score_jobs(
    model: ChoiceModel, jobs: Sequence[list[list[dict[str, str]]]]
) -> list[tuple[np.ndarray, int, float]]:
    out = []
    for prompts in tqdm(jobs, desc="icl", unit="config"):
        t0 = time.perf_counter()
        probs, tokens = await score_prompts(model, prompts)
        out.append((probs, tokens, time.perf_counter() - t0))
    return out
