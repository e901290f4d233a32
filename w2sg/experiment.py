"""The W2SG experiment: weak floor, weak labels, strong students per (label source, loss, method),
ceiling.

A label source is any p(true) column of the strong split: `weak` (our weak teacher's predictions),
a recorded column such as `weak_p_true`, or oversight labels added later. Nothing here changes
when a new source appears.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
from pydantic import Field, field_validator, model_validator
from torch import nn

from w2sg.config import Config, Experiment
from w2sg.data import Example, Size, label_source, split_by_question
from w2sg.datasets import DatasetSpec, dataset_field, load_split, train_pool
from w2sg.ensembles import EnsembleConfig, EnsembleResult, run_ensemble
from w2sg.features import cached_features
from w2sg.icl import ICLConfig
from w2sg.losses import LossName
from w2sg.methods import VANILLA, Labels, Method, MethodInput, MethodSpec, Supervision, Vanilla, blind_pool
from w2sg.metrics import Estimate, auc_ci, auc_pgr_ci, correct, label_quality, mean_ci, pgr_ci
from w2sg.models import ModelConfig, build_classifier
from w2sg.report import chance_reason, unrelated_reason, write_report
from w2sg.results import ExperimentResult, SourceResult, StudentResult, student_key
from w2sg.run_folder import is_main_process, mark_complete, open_run, wait_for_main
from w2sg.tracking import Histories, Tracker, TrackingConfig, tag, tracked, tracking_field, write_curves
from w2sg.train import TrainConfig, predict, resolve_device, seed_everything, train

log = logging.getLogger(__name__)
WEAK = "weak"


class Sizes(Config):
    """Questions per split (a multiple-choice question gives one row per candidate answer): a
    count, a share of the train file's questions (0.25), or `rest` (what the others leave)."""

    weak: Size = Field(600, description="gold-labelled questions for the weak teacher")
    strong: Size = Field(1000, description="questions the student learns from (weak labels)")
    val: Size = Field(200, description="questions for model selection")
    test: Size | None = Field(None, description="test questions (of the test split); None = all")
    dev: Size | None = Field(
        None,
        description="held-out questions of the train file that no model trains or selects on: every "
        "model is scored on them too, to choose settings without the test split",
    )

    ID_NEUTRAL: ClassVar[dict[str, Any]] = {"dev": None}  # w2sg.identity: runs made before dev keep their ids


class W2SGCore(Experiment):
    """The W2SG section every experiment config shares (`w2sg train`, `w2sg run`): the data, the
    weak teacher(s), the strong student and ceiling, how students learn and are selected, where
    runs go. `Fitter`, `supervise` and `score_models` read only this."""

    name: str = "w2sg"
    seed: int = Field(0, description="moves the splits, the distractors, every init and data order")
    seeds: list[int] | None = Field(
        None,
        min_length=1,
        description="run the config once per seed (each an ordinary run with `seed` set, in its own "
        "folder), then aggregate them: mean over seeds with a seeds-and-questions interval",
    )
    dataset: DatasetSpec = dataset_field()
    weak: ModelConfig
    weak_train: TrainConfig = Field(default_factory=TrainConfig)
    strong: ModelConfig
    strong_train: TrainConfig = Field(default_factory=TrainConfig)
    ensembles: list[EnsembleConfig] = Field(
        default_factory=list, description="weak-teacher ensembles (same weak model), used as label sources"
    )
    losses: list[LossName] = Field(default_factory=lambda: ["xent"])
    methods: list[MethodSpec] = Field(
        default_factory=lambda: [Vanilla()],
        min_length=1,
        description="W2SG methods (w2sg.methods: vanilla, confident_only, probe_relabel, probe_filter, "
        "s2s): a student per (label source, loss, method); a name, or a mapping of kind and settings",
    )
    select_on: Literal["source", "gold"] = Field(
        "source",
        description="validation labels for student selection: the same weak source (no gold "
        "needed) or gold. The weak teacher and the ceiling always select on gold.",
    )
    n_boot: int = Field(1000, ge=100, description="bootstrap resamples (of questions) per interval")
    out_dir: Path = Path("runs")
    cache_dir: Path = Path("runs/cache")
    tracking: TrackingConfig = tracking_field()

    # w2sg.identity: where curves are logged changes no result (subclasses extend this dict)
    ID_EXCLUDE: ClassVar[dict[str, Any]] = {"tracking": True}
    # w2sg.identity: as before `seeds` and `methods` existed (vanilla: the students every run trained)
    ID_NEUTRAL: ClassVar[dict[str, Any]] = {"seeds": None, "methods": [Vanilla()]}

    @field_validator("methods")
    @classmethod
    def _distinct_methods(cls, methods: list[Any]) -> list[Any]:
        labels = [m.label for m in methods]
        if len(set(labels)) != len(labels):
            raise ValueError(f"methods: each needs its own name (set `name` on repeats), got {labels}")
        return methods

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds has duplicates: {seeds}")
        return seeds

    def id_data(self, data: str) -> str:
        """The data part of the run id. Since `seed` moves every init and data order too (not only
        the splits), a run with seed != 0 differs from one made before: it gets another id, so an
        older folder of that seed is never reused for it. Seed 0 runs are unchanged."""
        return data if self.seed == 0 else f"{data}|seed moves inits"

    def check_one_seed(self) -> None:
        """A runner of one run refuses a config with `seeds` (`w2sg.seeds.run_seeds` runs those)."""
        if self.seeds is not None:
            raise ValueError(
                f"seeds: {self.seeds} asks for one run per seed; run them with w2sg.seeds.run_seeds (as "
                "`w2sg train` and `w2sg run` do), or set `seeds: null` and `seed` for one run"
            )


class W2SGConfig(W2SGCore):
    sizes: Sizes = Field(default_factory=Sizes)
    label_sources: list[str] = Field(
        default_factory=lambda: [WEAK],
        description="weak (our teacher), an ensemble's name, or a p(true) column of the data",
    )
    icl: ICLConfig | None = Field(None, description="in-context-learning W2SG (`w2sg icl`)")

    # icl is a later stage with its own folder inside this run's; it does not change training.
    ID_EXCLUDE: ClassVar[dict[str, Any]] = {**W2SGCore.ID_EXCLUDE, "icl": True}

    @model_validator(mode="after")
    def _names(self) -> W2SGConfig:
        names = [WEAK, *(e.source for e in self.ensembles)]
        if len(set(names)) != len(names):
            raise ValueError(f"ensemble names must be unique and not {WEAK!r}: {names}")
        if len(set(self.label_sources)) != len(self.label_sources):
            raise ValueError(f"label_sources has duplicates: {self.label_sources}")
        return self


#: Label sources given in code: source name → row id → p(true) (e.g. an oversight graph's labels).
GivenLabels = Mapping[str, Mapping[str, float]]


def prepare_splits(cfg: W2SGConfig, labels: GivenLabels | None = None) -> dict[str, list[Example]]:
    """The run's splits; `labels` join each row they cover as label sources (`Example.labels`), so
    they are in the data's fingerprint (the run id) like a recorded column."""
    train = load_split(cfg.dataset, "train", seed=cfg.seed)
    if labels:
        train = [e.model_copy(update={"labels": {**e.labels, **_given(labels, e.id)}}) for e in train]
    test = load_split(cfg.dataset, "test", seed=cfg.seed)
    where = f"{cfg.dataset.title}"
    pool = train_pool(train, {e.qid for e in test}, where)
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
        tracker: Tracker | None = None,
    ):
        # weak_split: the gold rows the weak teachers learn from (`w2sg run` calls them `judge`:
        # its trained judges learn from the same questions).
        self.cfg, self.sp, self.resolve, self.weak_split = cfg, sp, resolve, weak_split
        self.gold = {k: np.asarray(label_source(v, "gold")) for k, v in sp.items()}
        # Each row's question: every interval resamples questions (a question's rows correlate).
        self.qids = {k: np.array([e.qid for e in v]) for k, v in sp.items()}
        # Any further split (e.g. a calibration split) is one the weak teachers label. Features are
        # computed for the whole list in one pass (and cached row by row): dev rows go last, so a
        # run without a dev split batches its rows as runs did before dev splits existed.
        self.seen = {
            "weak": [e for rows in sp.values() for e in rows],
            "strong": [*sp["strong"], *sp["val"], *sp["test"], *sp.get("dev", [])],
        }
        self._features: dict[str, tuple[dict[str, int], np.ndarray]] = {}
        # Every model's training history by its name in the run, for curves.png and the tracker.
        self.tracker = tracker
        self.histories = Histories()

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
        val_rows: Sequence[Example] | None = None,
    ) -> tuple[nn.Module, int]:
        """`what` names the model in the progress lines (default: the role); `val_rows`: the rows
        of `val_labels` (default: the whole val split)."""
        cfg = self.cfg
        mcfg, tcfg = (cfg.weak, cfg.weak_train) if role == "weak" else (cfg.strong, cfg.strong_train)
        # The experiment's seed moves every init and data order too; seed 0 keeps the train seeds
        # (so the runs made before seeds moved them keep their figures).
        tcfg = tcfg.model_copy(update={"loss": loss, "seed": tcfg.seed + cfg.seed if seed is None else seed})
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
        val = self.sp["val"] if val_rows is None else val_rows
        name = self.histories.name(f"{what or role} [{tcfg.loss}]")
        res = train(
            model,
            rows,
            labels,
            val,
            val_labels,
            tcfg,
            weights=weights,
            stage=stage,
            tracker=self.tracker,
            name=name,
        )
        self.histories[name] = res.history
        return model, res.best_step

    def features(self, role: str, split: str) -> np.ndarray:
        """Frozen features of the role's model on the rows of the strong or val split, from the
        feature cache (for a `features` model, the rows its heads read), read once per role."""
        if role not in self._features:
            mcfg, tcfg = (
                (self.cfg.weak, self.cfg.weak_train)
                if role == "weak"
                else (self.cfg.strong, self.cfg.strong_train)
            )
            # strong and val: what methods see (the feature cache holds rows, so any order reads alike)
            rows = list({e.id: e for e in [*self.sp["strong"], *self.sp["val"]]}.values())
            x = cached_features(
                self.resolve(mcfg.path),
                rows,
                self.cfg.cache_dir,
                pooling=mcfg.pooling,
                max_length=mcfg.max_length,
                device=resolve_device(tcfg.device),
                layers=mcfg.layers,
            )
            self._features[role] = ({e.id: i for i, e in enumerate(rows)}, x.numpy())
        at, x = self._features[role]
        return x[[at[e.id] for e in self.sp[split]]]

    def predict(self, role: str, model: nn.Module, rows: Sequence[Example]) -> np.ndarray:
        """p(true) of a model `fit` made, on the device and at the precision it trained with."""
        tcfg = self.cfg.weak_train if role == "weak" else self.cfg.strong_train
        return predict(model, rows, tcfg.eval_batch_size, tcfg.device, tcfg.precision)  # type: ignore[arg-type]

    def member(
        self, rows: Sequence[Example], labels: np.ndarray, weights: np.ndarray | None, seed: int
    ) -> Callable[[Sequence[Example]], np.ndarray]:
        """One weak teacher for an ensemble (`w2sg.ensembles.Fit`), selected on gold val."""
        model, _ = self.fit(
            "weak", rows, list(labels), list(self.gold["val"]), weights=weights, seed=seed, what="weak member"
        )
        return lambda xs: self.predict("weak", model, xs)


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
    computed = {WEAK: {k: fitter.predict("weak", weak, sp[k]) for k in targets}}
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


class Column(NamedTuple):
    """A model's p(true) on the rows of one split."""

    split: str
    p: np.ndarray


#: predictions.npz keys of the strong split (floors of supervisors with no test predictions).
STRONG = "strong__"


@dataclass
class Scores:
    """What `score_models` measures: the ceiling on test (and on dev, when there is a dev split),
    each supervisor's floor, each student, and the per-row p(true) of every model (on test; a floor
    with no test predictions on the strong split, its keys prefixed STRONG)."""

    ceiling: Estimate
    ceiling_dev: Estimate | None
    ceiling_auc: Estimate
    ceiling_auc_dev: Estimate | None
    sources: list[SourceResult]
    students: list[StudentResult]
    preds: dict[str, np.ndarray]
    ceiling_chance: str | None = None
    ceiling_chance_dev: str | None = None

    def result(
        self, run_id: str, ensembles: list[EnsembleResult], sizes: dict[str, int], seconds: float
    ) -> ExperimentResult:
        return ExperimentResult(
            run_id=run_id,
            ceiling=self.ceiling,
            ceiling_dev=self.ceiling_dev,
            ceiling_auc=self.ceiling_auc,
            ceiling_auc_dev=self.ceiling_auc_dev,
            ceiling_chance=self.ceiling_chance,
            ceiling_chance_dev=self.ceiling_chance_dev,
            sources=self.sources,
            students=self.students,
            ensembles=ensembles,
            sizes=sizes,
            seconds=seconds,
        )


class Scorer:
    """Every figure of a model on a split: accuracy and ROC AUC, PGR on both, whether it is at chance;
    each interval resamples the split's questions, with the config's n_boot and seed."""

    def __init__(self, fitter: Fitter):
        self.gold, self.qids = fitter.gold, fitter.qids
        self.boot = {"n_boot": fitter.cfg.n_boot, "seed": fitter.cfg.seed}

    def accuracy(self, c: Column) -> Estimate:
        return mean_ci(correct(c.p, self.gold[c.split]), self.qids[c.split], **self.boot)

    def auc(self, c: Column) -> Estimate:
        return auc_ci(c.p, self.gold[c.split], self.qids[c.split], **self.boot)

    def gaps(self, floor: Column, student: Column, ceiling: Column) -> tuple[Estimate, Estimate]:
        """PGR on accuracy and on AUC. Student and ceiling share their rows; the floor too when it
        is on them, else (the split it labelled) its rows are resampled on their own."""
        on, paired = student.split, floor.split == student.split
        gold, qids = self.gold[on], self.qids[on]
        f_gold, f_qids = self.gold[floor.split], self.qids[floor.split]
        oks = [correct(floor.p, f_gold), correct(student.p, gold), correct(ceiling.p, gold)]
        pgr = pgr_ci(*oks, qids, floor_groups=f_qids, paired=paired, **self.boot)
        auc_pgr = auc_pgr_ci(
            floor.p,
            student.p,
            ceiling.p,
            gold,
            qids,
            floor_gold=f_gold,
            floor_groups=f_qids,
            paired=paired,
            **self.boot,
        )
        return pgr, auc_pgr

    def chance(self, c: Column) -> str | None:
        """Why the model is indistinguishable from chance or a constant predictor there, or None."""
        return chance_reason(c.p, self.gold[c.split], self.qids[c.split], rows=f"{c.split} rows", **self.boot)

    def follows(self, p_val: np.ndarray, labels_val: np.ndarray) -> str | None:
        """Why a student's val predictions do not follow its own labels (`unrelated_reason`)."""
        return unrelated_reason(correct(p_val, labels_val), self.qids["val"], **self.boot)


def floor_columns(labels: dict[str, np.ndarray], on: Sequence[str]) -> dict[str, Column]:
    """A supervisor's floor against the students on each split of `on`: its p(true) there, or
    against test without test predictions, on the strong split it labelled (no student is tested
    there); none on dev without dev predictions."""
    floors = {k: Column(k, labels[k]) for k in on if k in labels}
    if "test" not in floors:
        floors["test"] = Column("strong", labels["strong"])
    return floors


def source_result(
    sc: Scorer, src: str, labels: dict[str, np.ndarray], floors: dict[str, Column]
) -> SourceResult:
    dev = floors.get("dev")
    floor_chance = sc.chance(floors["test"])
    # Without test predictions the floor is scored on the strong split: the labels' own flag.
    on_strong = floors["test"].split == "strong"
    return SourceResult(
        source=src,
        floor=sc.accuracy(floors["test"]),
        floor_split=floors["test"].split,
        floor_auc=sc.auc(floors["test"]),
        labels=label_quality(labels["strong"], sc.gold["strong"], sc.qids["strong"], **sc.boot),
        floor_dev=None if dev is None else sc.accuracy(dev),
        floor_auc_dev=None if dev is None else sc.auc(dev),
        floor_chance=floor_chance,
        floor_chance_dev=None if dev is None else sc.chance(dev),
        labels_chance=floor_chance if on_strong else sc.chance(Column("strong", labels["strong"])),
    )


def student_result(
    sc: Scorer,
    name: tuple[str, str, int],
    floors: dict[str, Column],
    student: dict[str, Column],
    ceiling: dict[str, Column],
    unrelated: str | None = None,
    about: dict[str, Any] | None = None,
) -> StudentResult:
    """A student's figures (`name`: its source, loss, best step) on test, and on dev when it has a
    dev column (PGR there only against a floor on dev); `unrelated`: why its predictions do not
    follow its labels, a collapse no constant-predictor test sees; `about`: further fields (its
    method, the rows it trained on)."""
    src, loss, best = name
    pgr, auc_pgr = sc.gaps(floors["test"], student["test"], ceiling["test"])
    on_dev: dict[str, Estimate] = {}
    if "dev" in student:
        on_dev = {"accuracy_dev": sc.accuracy(student["dev"]), "auc_dev": sc.auc(student["dev"])}
        if "dev" in floors:
            on_dev["pgr_dev"], on_dev["auc_pgr_dev"] = sc.gaps(floors["dev"], student["dev"], ceiling["dev"])
    return StudentResult(
        source=src,
        loss=loss,
        accuracy=sc.accuracy(student["test"]),
        auc=sc.auc(student["test"]),
        best_step=best,
        pgr=pgr,
        auc_pgr=auc_pgr,
        collapsed=sc.chance(student["test"]) or unrelated,
        **on_dev,
        **(about or {}),
    )


def score_models(fitter: Fitter, supervisors: dict[str, dict[str, np.ndarray]]) -> Scores:
    """The strong ceiling on gold, then a student per (label source, loss, method) on what the
    method (`w2sg.methods`; vanilla: the labels as they are) makes of each supervisor's p(true)
    over `strong` (selected on its `val`). A supervisor with `test` p(true) is floored on
    the test rows (paired with the students); without, it is floored on the strong split it
    labelled, which no student is tested on. With a `dev` split, the ceiling, every student and
    each supervisor with `dev` p(true) are scored on it too (PGR paired there); no model trains or
    selects on it. Per-row p(true) of every model come back too."""
    cfg, sp, gold, sc = fitter.cfg, fitter.sp, fitter.gold, Scorer(fitter)
    on = ("test", "dev") if "dev" in sp else ("test",)
    log.info("strong ceiling on %d gold rows", len(sp["strong"]))
    model, _ = fitter.fit("strong", sp["strong"], list(gold["strong"]), list(gold["val"]), what="ceiling")
    ceiling = {k: Column(k, fitter.predict("strong", model, sp[k])) for k in on}
    del model
    preds = {"gold": gold["test"], "ceiling": ceiling["test"].p}
    sources, students = [], []
    for src, labels in supervisors.items():
        floors = floor_columns(labels, on)
        sources.append(source_result(sc, src, labels, floors))
        if floors["test"].split == "test":
            preds[f"floor__{src}"] = floors["test"].p
        else:  # unpaired: the per-seed aggregates resample these rows on their own
            preds |= {f"{STRONG}gold": gold["strong"], f"{STRONG}floor__{src}": floors["test"].p}
        for loss in cfg.losses:
            for method in cfg.methods:
                log.info("student on %s labels, %s loss, %s", src, loss, method.label)
                sup = method_supervision(fitter, method, src, labels, loss)
                what = f"student on {src}" + ("" if method.label == VANILLA else f" ({method.label})")
                model, best = fit_student(fitter, loss, sup, what)
                student = {k: Column(k, fitter.predict("strong", model, sp[k])) for k in on}
                preds[student_key(src, loss, method.label)] = student["test"].p
                # Gold-free: does it still follow the labels it learned from, on val?
                follows = sc.follows(fitter.predict("strong", model, sp["val"]), sup.val.p)
                kept = None if sup.strong.keep is None else int(sup.strong.keep.sum())
                about = {"method": method.label, "rows": kept}
                students.append(
                    student_result(sc, (src, loss, best), floors, student, ceiling, follows, about)
                )
    dev = ceiling.get("dev")
    return Scores(
        ceiling=sc.accuracy(ceiling["test"]),
        ceiling_dev=None if dev is None else sc.accuracy(dev),
        ceiling_auc=sc.auc(ceiling["test"]),
        ceiling_auc_dev=None if dev is None else sc.auc(dev),
        ceiling_chance=sc.chance(ceiling["test"]),
        ceiling_chance_dev=None if dev is None else sc.chance(dev),
        sources=sources,
        students=students,
        preds=preds,
    )


def method_supervision(
    fitter: Fitter, method: Method, src: str, labels: dict[str, np.ndarray], loss: str
) -> Supervision:
    """What `method` makes of source `src`'s p(true) for a student with `loss`. It sees the strong
    and val rows without gold (`w2sg.methods.MethodInput`); its answer is checked here."""
    sp, name = fitter.sp, method.label
    if isinstance(method, Vanilla):  # no method code: the students of every run before methods
        return Supervision(Labels(labels["strong"]), Labels(labels["val"]))

    def fit(strong: np.ndarray, val: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
        model, _ = fit_student(fitter, loss, Supervision(Labels(strong), Labels(val)), f"{what} on {src}")
        return fitter.predict("strong", model, sp["strong"]), fitter.predict("strong", model, sp["val"])

    inp = MethodInput(
        name,
        src,
        loss,
        blind_pool("strong", sp["strong"], labels["strong"], name),
        blind_pool("val", sp["val"], labels["val"], name),
        fitter.features,
        fit,
    )
    sup = method.supervise(inp)
    where = f"method {name!r} on source {src!r}"
    return Supervision(
        sup.strong.checked(len(sp["strong"]), f"{where}, strong split"),
        sup.val.checked(len(sp["val"]), f"{where}, val split"),
    )


def fit_student(fitter: Fitter, loss: str, sup: Supervision, what: str) -> tuple[nn.Module, int]:
    """A strong student on a method's rows, labels and weights of the strong split, selected on its
    val labels (or on gold val, with `select_on: gold`)."""
    sp, on = fitter.sp, sup.strong.rows()
    rows = sp["strong"] if sup.strong.keep is None else [sp["strong"][i] for i in on]
    weights = None if sup.strong.weights is None else list(sup.strong.weights[on])
    if fitter.cfg.select_on == "gold":
        val, sel = sp["val"], list(fitter.gold["val"])
    else:
        v = sup.val.rows()
        val, sel = (sp["val"] if sup.val.keep is None else [sp["val"][i] for i in v]), list(sup.val.p[v])
    return fitter.fit(
        "strong", rows, list(sup.strong.p[on]), sel, loss, weights=weights, what=what, val_rows=val
    )


def _given(labels: GivenLabels, row: str) -> dict[str, float]:
    return {name: float(by_row[row]) for name, by_row in labels.items() if row in by_row}


def run_experiment(
    cfg: W2SGConfig,
    *,
    resolve: Callable[[str], str] = str,
    force: bool = False,
    labels: GivenLabels | None = None,
) -> ExperimentResult:
    """Run (or load, when its run folder is complete and not `force`) one experiment. `labels`:
    label sources given in code (`prepare_splits`); name them in `label_sources` to train on them."""
    cfg.check_one_seed()
    t0 = time.perf_counter()
    sp = prepare_splits(cfg, labels)
    rid, run_dir, finished = open_run(cfg, sp, ExperimentResult, force)
    if finished is not None:
        return finished
    with tracked(cfg.tracking, run_dir, cfg) as tracker:
        fitter = Fitter(cfg, sp, resolve, tracker=tracker)
        result = _experiment(cfg, fitter, rid, run_dir, t0)
    wait_for_main()
    return result


def _experiment(cfg: W2SGConfig, fitter: Fitter, rid: str, run_dir: Path, t0: float) -> ExperimentResult:
    """`run_experiment` once its run folder is open: train, score, and write the folder."""
    sp = fitter.sp
    computed, ensembles = supervise(fitter, cfg.label_sources)
    supervisors = {}
    for src in cfg.label_sources:
        # A recorded column is a zero-shot supervisor: its labels on `strong` are held out for it.
        # On dev (no model trains on it), its column is its floor there.
        supervisors[src] = computed.get(src) or {
            k: np.asarray(label_source(sp[k], src)) for k in ("strong", "val", "dev") if k in sp
        }
    scores = score_models(fitter, supervisors)
    sizes = {k: len(v) for k, v in sp.items()}
    result = scores.result(rid, ensembles, sizes, time.perf_counter() - t0)
    if is_main_process():  # under torchrun every process gets here with the same figures
        # The supervisors' p(true) per split, for later stages (ICL demos) without retraining.
        np.savez(
            run_dir / "supervisors.npz",
            **{
                f"{k}__ids": np.array([e.id for e in sp[k]])
                for k in ("strong", "val", "test", "dev")
                if k in sp
            },
            **{f"{src}__{k}": v for src, d in computed.items() for k, v in d.items()},
        )
        write_report(result, run_dir)
        # Per-row test p(true) of every model, for paired comparisons the table does not make.
        save_predictions(run_dir, sp, scores.preds)
        finish_curves(fitter, run_dir, result)
        mark_complete(run_dir, result)
    return result


def finish_curves(fitter: Fitter, run_dir: Path, result: ExperimentResult) -> None:
    """curves.png of every model the fitter trained (always), and the run's summary figures
    (ceiling and students: accuracy and PGR on test) with curves.png to its tracker."""
    if (png := write_curves(fitter.histories, run_dir / "curves.png")) is None:
        return
    summary = {"ceiling/accuracy": result.ceiling.value}
    for s in result.students:
        name = tag(student_key(s.source, s.loss, s.method))  # student__weak__xent → student_weak_xent
        summary |= {f"{name}/accuracy": s.accuracy.value, f"{name}/pgr": s.pgr.value}
    if fitter.tracker is not None:
        fitter.tracker.summary(summary, {"curves": png})


def save_predictions(run_dir: Path, sp: dict[str, list[Example]], preds: dict[str, np.ndarray]) -> None:
    """predictions.npz: per-row test p(true) of every model, with row and question ids (so that
    `w2sg compare` resamples questions like the report does); the STRONG-prefixed columns (floors
    with no test predictions) with the strong split's ids and question ids."""
    cols = {"ids": np.array([e.id for e in sp["test"]]), "qids": np.array([e.qid for e in sp["test"]])}
    if any(k.startswith(STRONG) for k in preds):
        cols[f"{STRONG}ids"] = np.array([e.id for e in sp["strong"]])
        cols[f"{STRONG}qids"] = np.array([e.qid for e in sp["strong"]])
    np.savez(run_dir / "predictions.npz", **cols, **preds)


def accuracy_estimate(correct: np.ndarray, qids: np.ndarray, cfg: W2SGCore) -> Estimate:
    """Accuracy with a question-level bootstrap CI from per-row correctness (0/1)."""
    return mean_ci(correct, qids, n_boot=cfg.n_boot, seed=cfg.seed)
