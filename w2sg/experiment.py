"""The W2SG experiment: weak floor, weak labels, strong students per (label source, loss), ceiling.

A label source is any p(true) column of the strong split: `weak` (our weak teacher's predictions),
a recorded column such as `weak_p_true`, or oversight labels added later. Nothing here changes
when a new source appears.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from w2sg.data import DataError, Example, Size, label_source, split_by_question
from w2sg.datasets import DatasetSpec, dataset_field, load_split
from w2sg.ensembles import EnsembleConfig, EnsembleResult, run_ensemble
from w2sg.icl import ICLConfig
from w2sg.losses import LossName
from w2sg.metrics import Estimate, correct, label_quality, mean_ci, pgr_ci
from w2sg.models import ModelConfig, build_classifier
from w2sg.report import write_report
from w2sg.results import ExperimentResult, SourceResult, StudentResult
from w2sg.run_folder import mark_complete, open_run, run_id
from w2sg.train import TrainConfig, predict, resolve_device, seed_everything, train

log = logging.getLogger(__name__)
WEAK = "weak"


class Sizes(BaseModel):
    """Questions per split (a multiple-choice question gives one row per candidate answer): a
    count, a share of the train file's questions (0.25), or `rest` (what the others leave)."""

    model_config = ConfigDict(extra="forbid")
    weak: Size = Field(600, description="gold-labelled questions for the weak teacher")
    strong: Size = Field(1000, description="questions the student learns from (weak labels)")
    val: Size = Field(200, description="questions for model selection")
    test: Size | None = Field(None, description="test questions (of the test split); None = all")
    dev: Size | None = Field(
        None,
        description="held-out questions of the train file that no model trains or selects on: every "
        "model is scored on them too, to choose settings without the test split",
    )


class W2SGCore(BaseModel):
    """The W2SG section every experiment config shares (`w2sg train`, `w2sg run`): the data, the
    weak teacher(s), the strong student and ceiling, how students learn and are selected, where
    runs go. `Fitter`, `supervise` and `score_models` read only this."""

    model_config = ConfigDict(extra="forbid")
    name: str = "w2sg"
    seed: int = 0
    dataset: DatasetSpec = dataset_field()
    weak: ModelConfig
    weak_train: TrainConfig = Field(default_factory=TrainConfig)
    strong: ModelConfig
    strong_train: TrainConfig = Field(default_factory=TrainConfig)
    ensembles: list[EnsembleConfig] = Field(
        default_factory=list, description="weak-teacher ensembles (same weak model), used as label sources"
    )
    losses: list[LossName] = Field(default_factory=lambda: ["xent"])
    select_on: Literal["source", "gold"] = Field(
        "source",
        description="validation labels for student selection: the same weak source (no gold "
        "needed) or gold. The weak teacher and the ceiling always select on gold.",
    )
    n_boot: int = Field(1000, ge=100, description="bootstrap resamples (of questions) per interval")
    out_dir: Path = Path("runs")
    cache_dir: Path = Path("runs/cache")


class W2SGConfig(W2SGCore):
    sizes: Sizes = Field(default_factory=Sizes)
    label_sources: list[str] = Field(
        default_factory=lambda: [WEAK],
        description="weak (our teacher), an ensemble's name, or a p(true) column of the data",
    )
    icl: ICLConfig | None = Field(None, description="in-context-learning W2SG (`w2sg icl`)")

    @model_validator(mode="after")
    def _names(self) -> W2SGConfig:
        names = [WEAK, *(e.source for e in self.ensembles)]
        if len(set(names)) != len(names):
            raise ValueError(f"ensemble names must be unique and not {WEAK!r}: {names}")
        if len(set(self.label_sources)) != len(self.label_sources):
            raise ValueError(f"label_sources has duplicates: {self.label_sources}")
        return self

    def run_id(self, data: str) -> str:
        """The run folder's name, from this config and the fingerprint of the data it runs on."""
        # icl is a later stage with its own folder inside this run's; it does not change training.
        return run_id(self.name, self, data, exclude=id_exclude(self.sizes, icl=True))


def id_exclude(sizes: BaseModel, **drop: Any) -> dict[str, Any]:
    """`drop` (fields that change no result) for `run_id`, plus `sizes.dev` when it is unset: configs
    without a dev split keep the run ids they had before the field existed."""
    if getattr(sizes, "dev", None) is None:
        drop["sizes"] = {"dev"}
    return drop


def prepare_splits(cfg: W2SGConfig) -> dict[str, list[Example]]:
    pool = load_split(cfg.dataset, "train", seed=cfg.seed)
    test = load_split(cfg.dataset, "test", seed=cfg.seed)
    test_qids = {e.qid for e in test}
    where = f"{cfg.dataset.title}"
    if pool and all(e.qid in test_qids for e in pool):
        raise DataError(
            f"{where}: its train and test splits are the same questions (one file serves every split); "
            "give a folder with a train and a test file, or `files: {train: ..., test: ...}`"
        )
    pool = [e for e in pool if e.qid not in test_qids]  # a few SciQ questions repeat across splits
    s = cfg.sizes
    sizes = {"weak": s.weak, "strong": s.strong, "val": s.val}
    if s.dev is not None:  # drawn last: without `rest`, the others keep their questions
        sizes["dev"] = s.dev
    splits = split_by_question(
        pool, sizes, seed=cfg.seed, what=f"questions in {where} train not in its test split"
    )
    if s.test:
        splits["test"] = split_by_question(
            test, {"test": s.test}, seed=cfg.seed, what=f"questions in {where} test"
        )["test"]
    else:
        splits["test"] = test
    # A recorded label source must be in the data: say so now, before any model is trained.
    recorded = [x for x in cfg.label_sources if x != WEAK and x not in {e.source for e in cfg.ensembles}]
    for src in recorded:
        for k in ("strong", "dev"):
            if k in splits:
                label_source(splits[k], src)
    return splits


class Fitter:
    """Trains the weak or strong model of one experiment on any rows and labels. Features are
    computed for every row a model is ever shown, once, so bags and students share them."""

    def __init__(
        self,
        cfg: W2SGCore,
        sp: dict[str, list[Example]],
        resolve: Callable[[str], str],
        weak_split: str = "weak",
    ):
        # weak_split: the gold rows the weak teachers learn from (`w2sg run` calls them `judge`:
        # its trained judges learn from the same questions).
        self.cfg, self.sp, self.resolve, self.weak_split = cfg, sp, resolve, weak_split
        self.gold = {k: np.asarray(label_source(v, "gold")) for k, v in sp.items()}
        # Each row's question: every interval resamples questions (a question's rows correlate).
        self.qids = {k: np.array([e.qid for e in v]) for k, v in sp.items()}
        # Any further split (e.g. a calibration split) is one the weak teachers label. The list
        # keys the feature cache: dev rows go last, so runs without a dev split keep their caches.
        self.seen = {
            "weak": [e for rows in sp.values() for e in rows],
            "strong": [*sp["strong"], *sp["val"], *sp["test"], *sp.get("dev", [])],
        }

    def fit(
        self,
        role: str,
        rows: Sequence[Example],
        labels: Sequence[float],
        val_labels: Sequence[float],
        loss: str = "xent",
        weights: Sequence[float] | None = None,
        seed: int | None = None,
        what: str | None = None,
    ) -> tuple[nn.Module, int]:
        """`what` names the model in the progress lines (default: the role)."""
        cfg = self.cfg
        mcfg, tcfg = (cfg.weak, cfg.weak_train) if role == "weak" else (cfg.strong, cfg.strong_train)
        update = {"loss": loss} if seed is None else {"loss": loss, "seed": seed}
        tcfg = tcfg.model_copy(update=update)
        seed_everything(tcfg.seed)  # new heads are initialised here, before train() seeds again
        model = build_classifier(
            mcfg,
            self.resolve(mcfg.path),
            train=rows,
            all_examples=self.seen[role],
            cache_dir=cfg.cache_dir,
            device=resolve_device(tcfg.device),
        )
        stage = f"train {what or role} ({Path(mcfg.path).name}, {tcfg.loss}, {len(rows)} rows)"
        res = train(model, rows, labels, self.sp["val"], val_labels, tcfg, weights=weights, stage=stage)
        return model, res.best_step

    def member(
        self, rows: Sequence[Example], labels: np.ndarray, weights: np.ndarray | None, seed: int
    ) -> Callable[[Sequence[Example]], np.ndarray]:
        """One weak teacher for an ensemble (`w2sg.ensembles.Fit`), selected on gold val."""
        model, _ = self.fit(
            "weak", rows, list(labels), list(self.gold["val"]), weights=weights, seed=seed, what="weak member"
        )
        return lambda xs: predict(model, xs)


def supervise(
    fitter: Fitter, sources: Sequence[str], targets: Sequence[str] | None = None
) -> tuple[dict[str, dict[str, np.ndarray]], list[EnsembleResult]]:
    """p(true) on the `targets` splits of the weak teacher and of each ensemble among `sources`
    (default: strong, val, test, and dev when there is one)."""
    cfg, sp, gold, w = fitter.cfg, fitter.sp, fitter.gold, fitter.weak_split
    if targets is None:
        targets = ("strong", "val", "test", *(["dev"] if "dev" in sp else []))
    log.info("weak teacher on %d gold rows", len(sp[w]))
    weak, _ = fitter.fit("weak", sp[w], list(gold[w]), list(gold["val"]), what="weak teacher")
    computed = {WEAK: {k: predict(weak, sp[k]) for k in targets}}
    del weak
    ensembles = []
    for ens in cfg.ensembles:
        if ens.source not in sources:
            continue
        log.info("%s of weak teachers (%d members)", ens.method, ens.n)
        res, computed[ens.source] = run_ensemble(
            sp[w],
            gold[w],
            fitter.member,
            {k: sp[k] for k in targets},
            ens,
            seed=cfg.seed,
            val_gold=gold["val"],
        )
        ensembles.append(res)
    return computed, ensembles


@dataclass
class Scores:
    """What `score_models` measures: the ceiling on test (and on dev, when there is a dev split),
    each supervisor's floor, each student, and the per-row test p(true) of every model."""

    ceiling: Estimate
    ceiling_dev: Estimate | None
    sources: list[SourceResult]
    students: list[StudentResult]
    preds: dict[str, np.ndarray]


def score_models(fitter: Fitter, supervisors: dict[str, dict[str, np.ndarray]]) -> Scores:
    """The strong ceiling on gold, then a student per (label source, loss) on each supervisor's
    p(true) over `strong` (selected on its `val`). A supervisor with `test` p(true) is floored on
    the test rows (paired with the students); without, it is floored on the strong split it
    labelled, which no student is tested on. With a `dev` split, the ceiling, every student and
    each supervisor with `dev` p(true) are scored on it too (PGR paired there); no model trains or
    selects on it. Per-row test p(true) of every model come back too."""
    cfg, sp, gold, qids = fitter.cfg, fitter.sp, fitter.gold, fitter.qids
    dev = "dev" in sp

    def ok(probs: np.ndarray, split: str) -> np.ndarray:
        return correct(probs, gold[split])

    log.info("strong ceiling on %d gold rows", len(sp["strong"]))
    ceiling, _ = fitter.fit("strong", sp["strong"], list(gold["strong"]), list(gold["val"]), what="ceiling")
    preds = {"gold": gold["test"], "ceiling": predict(ceiling, sp["test"])}
    preds.update({f"floor__{k}": v["test"] for k, v in supervisors.items() if "test" in v})
    ceiling_ok = ok(preds["ceiling"], "test")
    ceiling_dev_ok = ok(predict(ceiling, sp["dev"]), "dev") if dev else None
    del ceiling

    sources, students = [], []
    for src, labels in supervisors.items():
        train_labels, val_labels = labels["strong"], labels["val"]
        floor_split = "test" if "test" in labels else "strong"
        floor_ok, paired = ok(labels[floor_split], floor_split), floor_split == "test"
        floor_dev_ok = ok(labels["dev"], "dev") if dev and "dev" in labels else None
        sources.append(
            SourceResult(
                source=src,
                floor=accuracy_estimate(floor_ok, qids[floor_split], cfg),
                floor_split=floor_split,
                labels=label_quality(
                    train_labels, gold["strong"], qids["strong"], n_boot=cfg.n_boot, seed=cfg.seed
                ),
                floor_dev=None if floor_dev_ok is None else accuracy_estimate(floor_dev_ok, qids["dev"], cfg),
            )
        )
        for loss in cfg.losses:
            log.info("student on %s labels, %s loss", src, loss)
            sel = list(val_labels) if cfg.select_on == "source" else list(gold["val"])
            student, best = fitter.fit(
                "strong", sp["strong"], list(train_labels), sel, loss, what=f"student on {src}"
            )
            preds[f"student__{src}__{loss}"] = predict(student, sp["test"])
            student_ok = ok(preds[f"student__{src}__{loss}"], "test")
            on_dev: dict[str, Estimate] = {}
            if ceiling_dev_ok is not None:
                student_dev_ok = ok(predict(student, sp["dev"]), "dev")
                on_dev["accuracy_dev"] = accuracy_estimate(student_dev_ok, qids["dev"], cfg)
                if floor_dev_ok is not None:
                    on_dev["pgr_dev"] = pgr_ci(
                        floor_dev_ok,
                        student_dev_ok,
                        ceiling_dev_ok,
                        qids["dev"],
                        paired=True,
                        n_boot=cfg.n_boot,
                        seed=cfg.seed,
                    )
            students.append(
                StudentResult(
                    source=src,
                    loss=loss,
                    accuracy=accuracy_estimate(student_ok, qids["test"], cfg),
                    best_step=best,
                    pgr=pgr_ci(
                        floor_ok,
                        student_ok,
                        ceiling_ok,
                        qids["test"],
                        floor_groups=qids[floor_split],
                        paired=paired,
                        n_boot=cfg.n_boot,
                        seed=cfg.seed,
                    ),
                    **on_dev,
                )
            )
    return Scores(
        ceiling=accuracy_estimate(ceiling_ok, qids["test"], cfg),
        ceiling_dev=None if ceiling_dev_ok is None else accuracy_estimate(ceiling_dev_ok, qids["dev"], cfg),
        sources=sources,
        students=students,
        preds=preds,
    )


def run_experiment(
    cfg: W2SGConfig, *, resolve: Callable[[str], str] = str, force: bool = False
) -> ExperimentResult:
    """Run (or load, when its run folder is complete and not `force`) one experiment."""
    t0 = time.perf_counter()
    sp = prepare_splits(cfg)
    rid, run_dir, finished = open_run(cfg, sp, ExperimentResult, force)
    if finished is not None:
        return finished
    fitter = Fitter(cfg, sp, resolve)
    computed, ensembles = supervise(fitter, cfg.label_sources)
    # The supervisors' p(true) per split, for later stages (ICL demos) without retraining.
    np.savez(
        run_dir / "supervisors.npz",
        **{f"{k}__ids": np.array([e.id for e in sp[k]]) for k in ("strong", "val", "test", "dev") if k in sp},
        **{f"{src}__{k}": v for src, d in computed.items() for k, v in d.items()},
    )
    supervisors = {}
    for src in cfg.label_sources:
        # A recorded column is a zero-shot supervisor: its labels on `strong` are held out for it.
        # On dev (no model trains on it), its column is its floor there.
        supervisors[src] = computed.get(src) or {
            k: np.asarray(label_source(sp[k], src)) for k in ("strong", "val", "dev") if k in sp
        }
    scores = score_models(fitter, supervisors)
    result = ExperimentResult(
        run_id=rid,
        ceiling=scores.ceiling,
        ceiling_dev=scores.ceiling_dev,
        sources=scores.sources,
        students=scores.students,
        ensembles=ensembles,
        sizes={k: len(v) for k, v in sp.items()},
        seconds=time.perf_counter() - t0,
    )
    write_report(result, run_dir)
    # Per-row test p(true) of every model, for paired comparisons the table does not make.
    save_predictions(run_dir, sp["test"], scores.preds)
    mark_complete(run_dir, result)
    return result


def save_predictions(run_dir: Path, test: Sequence[Example], preds: dict[str, np.ndarray]) -> None:
    """predictions.npz: per-row test p(true) of every model, with row and question ids (so that
    `w2sg compare` resamples questions like the report does)."""
    ids, qids = np.array([e.id for e in test]), np.array([e.qid for e in test])
    np.savez(run_dir / "predictions.npz", ids=ids, qids=qids, **preds)


def accuracy_estimate(correct: np.ndarray, qids: np.ndarray, cfg: W2SGCore) -> Estimate:
    """Accuracy with a question-level bootstrap CI from per-row correctness (0/1)."""
    return mean_ci(correct, qids, n_boot=cfg.n_boot, seed=cfg.seed)
