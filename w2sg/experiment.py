"""The W2SG experiment: weak floor, weak labels, strong students per (label source, loss), ceiling.

A label source is any p(true) column of the strong split: `weak` (our weak teacher's predictions),
a recorded column such as `weak_p_true`, or oversight labels added later. Nothing here changes
when a new source appears.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from w2sg.data import Example, label_source, load_dataset, split_by_question
from w2sg.metrics import Estimate, LabelQuality, bootstrap_ci, label_quality, pgr
from w2sg.models import ModelConfig, build_classifier
from w2sg.train import TrainConfig, predict, resolve_device, train

log = logging.getLogger(__name__)
WEAK = "weak"


class Sizes(BaseModel):
    """Numbers of *questions* per split (SciQ gives two rows per question)."""

    model_config = ConfigDict(extra="forbid")
    weak: int = Field(600, ge=1, description="gold-labelled questions for the weak teacher")
    strong: int = Field(1000, ge=1, description="questions the student learns from (weak labels)")
    val: int = Field(200, ge=1, description="questions for model selection")
    test: int | None = Field(None, ge=1, description="test questions; None = all")


class W2SGConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "w2sg"
    seed: int = 0
    dataset: str = "sciq"
    data_dir: Path | None = Field(None, description="None: $W2SG_DATA_DIR or ../shared/data/sciq")
    sizes: Sizes = Field(default_factory=Sizes)
    weak: ModelConfig
    weak_train: TrainConfig = Field(default_factory=TrainConfig)
    strong: ModelConfig
    strong_train: TrainConfig = Field(default_factory=TrainConfig)
    label_sources: list[str] = Field(default_factory=lambda: [WEAK])
    losses: list[Literal["xent", "logconf", "product"]] = Field(default_factory=lambda: ["xent"])
    select_on: Literal["source", "gold"] = Field(
        "source",
        description="validation labels for student selection: the same weak source (no gold "
        "needed) or gold. The weak teacher and the ceiling always select on gold.",
    )
    n_boot: int = Field(1000, ge=100)
    out_dir: Path = Path("runs")
    cache_dir: Path = Path("runs/cache")

    def run_id(self) -> str:
        blob = self.model_dump_json(exclude={"out_dir", "cache_dir"})
        return f"{self.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


class StudentResult(BaseModel):
    source: str
    loss: str
    accuracy: Estimate
    pgr: Estimate
    best_step: int


class SourceResult(BaseModel):
    source: str
    floor: Estimate = Field(description="the supervisor's own accuracy (see floor_split)")
    floor_split: str
    labels: LabelQuality = Field(description="quality of the labels on the strong split")


class ExperimentResult(BaseModel):
    run_id: str
    ceiling: Estimate
    sources: list[SourceResult]
    students: list[StudentResult]
    sizes: dict[str, int]
    seconds: float


def _pgr_estimate(
    floor_ok: np.ndarray, student_ok: np.ndarray, ceiling_ok: np.ndarray, paired: bool, n_boot: int, seed: int
) -> Estimate:
    """Bootstrap PGR. Student and ceiling share the test rows (paired); the floor is paired with
    them when it was measured on the same rows, else resampled on its own rows."""
    rng = np.random.default_rng(seed)
    value = pgr(floor_ok.mean(), student_ok.mean(), ceiling_ok.mean())
    draws = []
    for _ in range(n_boot):
        i = rng.integers(0, len(student_ok), len(student_ok))
        j = i if paired else rng.integers(0, len(floor_ok), len(floor_ok))
        draws.append(pgr(floor_ok[j].mean(), student_ok[i].mean(), ceiling_ok[i].mean()))
    d = np.asarray(draws)
    d = d[np.isfinite(d)]
    lo, hi = np.percentile(d, [2.5, 97.5]) if len(d) else (np.nan, np.nan)
    return Estimate(value=float(value), lo=float(lo), hi=float(hi), n=len(student_ok))


def prepare_splits(cfg: W2SGConfig) -> dict[str, list[Example]]:
    pool = load_dataset(cfg.dataset, "train", cfg.data_dir, seed=cfg.seed)
    test = load_dataset(cfg.dataset, "test", cfg.data_dir, seed=cfg.seed)
    test_qids = {e.qid for e in test}
    pool = [e for e in pool if e.qid not in test_qids]  # a few SciQ questions repeat across splits
    s = cfg.sizes
    splits = split_by_question(pool, {"weak": s.weak, "strong": s.strong, "val": s.val}, seed=cfg.seed)
    splits["test"] = split_by_question(test, {"test": s.test}, seed=cfg.seed)["test"] if s.test else test
    return splits


def run_experiment(
    cfg: W2SGConfig, *, resolve: Callable[[str], str] = str, force: bool = False
) -> ExperimentResult:
    """Run (or load, when its run folder is complete and not `force`) one experiment."""
    from w2sg.report import write_report

    run_dir = cfg.out_dir / cfg.run_id()
    done = run_dir / "results.json"
    if done.exists() and not force:
        log.info("%s is complete; loading it (use --force to rerun)", run_dir)
        return ExperimentResult.model_validate_json(done.read_text())
    t0 = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(cfg.model_dump_json(indent=2))
    sp = prepare_splits(cfg)
    gold = {k: np.asarray(label_source(v, "gold")) for k, v in sp.items()}
    # Rows each model is ever shown: frozen features are computed for exactly these, once.
    seen = {
        "weak": [*sp["weak"], *sp["strong"], *sp["val"], *sp["test"]],
        "strong": [*sp["strong"], *sp["val"], *sp["test"]],
    }

    def fit(
        role: str, rows: list[Example], labels: list[float], val_labels: list[float], loss: str = "xent"
    ) -> tuple[object, int]:
        mcfg, tcfg = (cfg.weak, cfg.weak_train) if role == "weak" else (cfg.strong, cfg.strong_train)
        model = build_classifier(
            mcfg,
            resolve(mcfg.path),
            train=rows,
            all_examples=seen[role],
            cache_dir=cfg.cache_dir,
            device=resolve_device(tcfg.device),
        )
        res = train(model, rows, labels, sp["val"], val_labels, tcfg.model_copy(update={"loss": loss}))
        return model, res.best_step

    def ok(probs: np.ndarray, split: str) -> np.ndarray:
        return ((probs > 0.5) == (gold[split] > 0.5)).astype(float)

    log.info("weak teacher on %d gold rows", len(sp["weak"]))
    weak, _ = fit("weak", sp["weak"], list(gold["weak"]), list(gold["val"]))
    weak_probs = {k: predict(weak, sp[k]) for k in ("strong", "val", "test")}
    del weak

    log.info("strong ceiling on %d gold rows", len(sp["strong"]))
    ceiling, _ = fit("strong", sp["strong"], list(gold["strong"]), list(gold["val"]))
    preds = {"gold": gold["test"], "floor__weak": weak_probs["test"], "ceiling": predict(ceiling, sp["test"])}
    ceiling_ok = ok(preds["ceiling"], "test")
    del ceiling

    sources, students = [], []
    for src in cfg.label_sources:
        if src == WEAK:
            train_labels, val_labels = weak_probs["strong"], weak_probs["val"]
            floor_ok, paired, floor_split = ok(weak_probs["test"], "test"), True, "test"
        else:  # a recorded column: the supervisor is zero-shot, so its labels on `strong` are held out
            train_labels = np.asarray(label_source(sp["strong"], src))
            val_labels = np.asarray(label_source(sp["val"], src))
            floor_ok, paired, floor_split = ok(train_labels, "strong"), False, "strong"
        sources.append(
            SourceResult(
                source=src,
                floor=_estimate(floor_ok, cfg),
                floor_split=floor_split,
                labels=label_quality(train_labels, gold["strong"], n_boot=cfg.n_boot, seed=cfg.seed),
            )
        )
        for loss in cfg.losses:
            log.info("student on %s labels, %s loss", src, loss)
            sel = list(val_labels) if cfg.select_on == "source" else list(gold["val"])
            student, best = fit("strong", sp["strong"], list(train_labels), sel, loss)
            preds[f"student__{src}__{loss}"] = predict(student, sp["test"])
            student_ok = ok(preds[f"student__{src}__{loss}"], "test")
            students.append(
                StudentResult(
                    source=src,
                    loss=loss,
                    accuracy=_estimate(student_ok, cfg),
                    best_step=best,
                    pgr=_pgr_estimate(floor_ok, student_ok, ceiling_ok, paired, cfg.n_boot, cfg.seed),
                )
            )

    result = ExperimentResult(
        run_id=cfg.run_id(),
        ceiling=_estimate(ceiling_ok, cfg),
        sources=sources,
        students=students,
        sizes={k: len(v) for k, v in sp.items()},
        seconds=time.perf_counter() - t0,
    )
    write_report(result, run_dir)
    # Per-row test p(true) of every model, for paired comparisons the table does not make.
    np.savez(run_dir / "predictions.npz", ids=np.array([e.id for e in sp["test"]]), **preds)
    tmp = done.with_suffix(".tmp")
    tmp.write_text(result.model_dump_json(indent=2))
    tmp.rename(done)  # written last and atomically: its presence means the run is complete
    return result


def _estimate(correct: np.ndarray, cfg: W2SGConfig) -> Estimate:
    """Accuracy with a bootstrap CI from per-row correctness (0/1)."""
    lo, hi = bootstrap_ci(lambda c: float(c.mean()), [correct], n_boot=cfg.n_boot, seed=cfg.seed)
    return Estimate(value=float(correct.mean()), lo=lo, hi=hi, n=len(correct))
