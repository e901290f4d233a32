"""Phase 2 (Sang et al. 2024): a recursively updated automatic alignment evaluator.

A ladder of models, weakest first. Rung 0 learns from a small gold set (the human supervision) and
labels rung 1's rows; rung 1's student trains on those labels, is evaluated, and is promoted to
evaluator for rung 2; and so on. Each rung has its own rows, so an evaluator never labels rows it
was trained on. Arms, run side by side over the same rows:
- `recursive`: rung k learns from rung k−1's student;
- `baseline` (non-recursive): every rung learns from rung 0's labels;
- `oversight`: as `recursive`, with each label mixed with an oversight p(true) column.
Gold is read only by rung 0, by each rung's ceiling (its model trained on gold of its rows), and
by the metrics.

The loop is a LangGraph graph (label → train → evaluate → promote) checkpointed in SQLite after
every node, so a killed run resumes where it stopped and finished rungs are not retrained.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict

import numpy as np
from langgraph.graph import END, START, StateGraph

from graphs.checkpoint import sqlite_saver
from oversight.experiments.ladder.config import LadderConfig, ladder_splits, slice_name
from oversight.experiments.ladder.report import rung_result, write_run
from oversight.experiments.ladder.results import LadderResult, RungResult
from w2sg.data import DataError, Example, label_source
from w2sg.models import FeatureHead, build_classifier
from w2sg.progress import track
from w2sg.run_folder import DONE, mark_complete, open_run
from w2sg.synthetic import SyntheticModel, synthetic_features
from w2sg.tracking import Histories, Tracker, tracked, write_curves
from w2sg.train import predict, resolve_device, seed_everything, train

log = logging.getLogger(__name__)
Role = Literal["gold", "student", "ceiling"]
NODES = ("label", "train", "evaluate", "promote")  # one rung of the graph, in order


@dataclass(frozen=True)
class Fitted:
    predict: Callable[[Sequence[Example]], np.ndarray]  # rows → p(true), shape (N,)
    best_step: int


class FitFn(Protocol):
    """Train rung `rung`'s model on `rows` with soft `labels`, selected on val against `val_labels`;
    `role` says whose labels they are: gold (rung 0), an evaluator's (student), gold (ceiling)."""

    def __call__(
        self, rung: int, rows: Sequence[Example], labels: np.ndarray, val_labels: np.ndarray, role: Role
    ) -> Fitted: ...


class RungFitter:
    """The real trainer of every rung. Unlike `w2sg.experiment.Fitter`, whose frozen features cover
    every split, a rung's features cover only the rows it will see (its own, those it labels, val
    and test): the last rung's SmolLM2 feature pass is then half as long."""

    def __init__(
        self,
        cfg: LadderConfig,
        sp: dict[str, list[Example]],
        resolve: Callable[[str], str],
        tracker: Tracker | None = None,
    ):
        self.cfg, self.sp, self.resolve, self.tracker = cfg, sp, resolve, tracker
        self.histories = Histories()  # of the models trained in this process (a resumed run: the rest)
        self._synthetic: dict[int, dict[str, Any]] = {}

    def seen(self, rung: int) -> list[Example]:
        own = [rung, *labelled_by(rung, len(self.cfg.rungs))]
        return [e for k in own for e in self.sp[slice_name(k)]] + [*self.sp["val"], *self.sp["test"]]

    def __call__(
        self, rung: int, rows: Sequence[Example], labels: np.ndarray, val_labels: np.ndarray, role: Role
    ) -> Fitted:
        r = self.cfg.rungs[rung]
        log.info("rung %d (%s): %s model on %d rows", rung, r.name, role, len(rows))
        seed_everything(r.train.seed)  # new heads are initialised here, before train() seeds again
        if isinstance(r.model, SyntheticModel):
            if rung not in self._synthetic:
                seen = self.seen(rung)
                self._synthetic[rung] = synthetic_features(seen, r.model, view=r.name, seed=self.cfg.seed)
            model = FeatureHead(self._synthetic[rung], [e.id for e in rows], r.model.hidden)
        else:
            model = build_classifier(
                r.model,
                self.resolve(r.model.path),
                train=rows,
                all_examples=self.seen(rung),
                cache_dir=self.cfg.cache_dir,
                device=resolve_device(r.train.device),
            )
        stage = f"rung {rung} {r.name} train {role} ({len(rows)} rows)"
        name = self.histories.name(f"rung {rung} {r.name} {role}")
        val = self.sp["val"]
        res = train(
            model,
            rows,
            list(labels),
            val,
            list(val_labels),
            r.train,
            stage=stage,
            tracker=self.tracker,
            name=name,
        )
        self.histories[name] = res.history
        return Fitted(lambda xs: predict(model, xs, device=r.train.device), res.best_step)


def labelled_by(rung: int, n: int) -> range:
    """The rungs whose rows rung `rung`'s model labels: every later one for rung 0 (the baseline
    arm's labels), the next one otherwise."""
    return range(1, n) if rung == 0 else range(rung + 1, min(rung + 2, n))


def mix(evaluator: Sequence[float], column: Sequence[float], weight: float) -> list[float]:
    """An oversight-assisted label: (1 − weight)·evaluator + weight·column, both p(true)."""
    return ((1 - weight) * np.asarray(evaluator) + weight * np.asarray(column)).tolist()


class LadderState(TypedDict, total=False):
    """Plain lists and dicts only, so the SQLite checkpointer stores them without a type registry."""

    rung: int  # the rung being worked on
    rung0: dict[str, list[float]]  # split → rung 0's p(true): every later rung's rows, val, test
    evaluators: dict[str, dict[str, list[float]]]  # arm → split → p(true) of its current evaluator
    labels: dict[str, dict[str, list[float] | None]]  # arm → train / val / test labels of this rung
    trained: dict[str, dict[str, Any]]  # arm → {preds: split → p(true), best_step, same_as}
    ceiling: list[float]  # test p(true) of this rung's model trained on gold
    results: list[dict[str, Any]]  # RungResult dumps, rung by rung
    columns: dict[str, list[float]]  # per-row arrays for predictions.npz / labels.npz


class LadderNodes:
    """The ladder graph's nodes over one run's splits: label → train → evaluate → promote."""

    def __init__(self, cfg: LadderConfig, sp: dict[str, list[Example]], fit: FitFn):
        self.cfg, self.sp, self.fit = cfg, sp, fit
        self.arms, self.n = cfg.arms(), len(cfg.rungs)
        self.gold = {name: np.asarray(label_source(rows, "gold")) for name, rows in sp.items()}
        self.qids = {name: np.array([e.qid for e in rows]) for name, rows in sp.items()}

    def column(self, split: str) -> list[float] | None:
        try:
            return label_source(self.sp[split], self.cfg.oversight.column) if self.cfg.oversight else None
        except DataError:
            return None  # only the test split may lack it (checked before the run)

    def label(self, state: LadderState) -> LadderState:
        k = state["rung"]
        if k == 0:
            g: dict[str, list[float] | None] = {
                "train": self.gold["rung0"].tolist(),
                "val": self.gold["val"].tolist(),
            }
            return {"labels": {arm: {**g, "test": None} for arm in self.arms}}
        labels: dict[str, dict[str, list[float] | None]] = {}
        for arm in self.arms:
            src = state["rung0"] if arm == "baseline" else state["evaluators"][arm]
            lab: dict[str, list[float] | None] = {
                "train": src[slice_name(k)],
                "val": src["val"],
                "test": src["test"],
            }
            if arm == "oversight" and self.cfg.oversight is not None:
                w = self.cfg.oversight.weight
                cols = {s: self.column(sp_name(s, k)) for s in lab}
                lab = {
                    s: None if v is None or cols[s] is None else mix(v, cols[s], w) for s, v in lab.items()
                }
            labels[arm] = lab
        return {"labels": labels}

    def train_rung(self, state: LadderState) -> LadderState:
        k = state["rung"]
        rows = self.sp[slice_name(k)]
        later = labelled_by(k, self.n)
        targets = {
            "val": self.sp["val"],
            "test": self.sp["test"],
            **{slice_name(j): self.sp[slice_name(j)] for j in later},
        }
        trained: dict[str, dict[str, Any]] = {}
        first: dict[tuple[tuple[float, ...], tuple[float, ...]], str] = {}
        for arm, lab in state["labels"].items():
            key = (tuple(lab["train"] or ()), tuple(lab["val"] or ()))
            if key in first:  # identical labels (rung 0, or baseline = recursive at rung 1): train once
                trained[arm] = {**trained[first[key]], "same_as": first[key] if k else None}
                continue
            f = self.fit(
                k, rows, np.asarray(lab["train"]), np.asarray(lab["val"]), "gold" if k == 0 else "student"
            )
            preds = {s: f.predict(xs).tolist() for s, xs in targets.items()}
            trained[arm], first[key] = {"preds": preds, "best_step": f.best_step, "same_as": None}, arm
        if k == 0:  # trained on gold of its own rows, rung 0 is its own ceiling
            ceiling = trained[self.arms[0]]["preds"]["test"]
        else:
            c = self.fit(k, rows, self.gold[slice_name(k)], self.gold["val"], "ceiling")
            ceiling = c.predict(self.sp["test"]).tolist()
        return {"trained": trained, "ceiling": ceiling}

    def evaluate(self, state: LadderState) -> LadderState:
        k, trained = state["rung"], state["trained"]
        g = {"rows": self.gold[slice_name(k)], "test": self.gold["test"]}
        q = {"rows": self.qids[slice_name(k)], "test": self.qids["test"]}
        results, columns = list(state.get("results", [])), dict(state.get("columns", {}))
        columns[f"ceiling__rung{k}"] = state["ceiling"]
        if k == 0:
            results.append(
                rung_result(self.cfg, 0, "gold", trained[self.arms[0]], state["ceiling"], g, q).model_dump()
            )
            columns["student__rung0"] = trained[self.arms[0]]["preds"]["test"]
        for arm in self.arms if k else []:
            lab = state["labels"][arm]
            res = rung_result(
                self.cfg, k, arm, trained[arm], state["ceiling"], g, q, lab, state["rung0"][slice_name(k)]
            )
            results.append(res.model_dump())
            columns[f"student__{arm}__rung{k}"] = trained[arm]["preds"]["test"]
            columns[f"labels__{arm}__rung{k}"] = lab["train"] or []
        return {"results": results, "columns": columns}

    def promote(self, state: LadderState) -> LadderState:
        k, trained = state["rung"], state["trained"]
        update: LadderState = {"rung": k + 1, "labels": {}, "trained": {}, "ceiling": []}
        if k == 0:
            update["rung0"] = trained[self.arms[0]]["preds"]
        # The evaluator of rung k + 1 in each arm is the student just trained (baseline ignores it).
        update["evaluators"] = {arm: trained[arm]["preds"] for arm in self.arms}
        return update

    def route_rung(self, state: LadderState) -> str:
        return "label" if state["rung"] < self.n else END


def build_ladder_graph(
    cfg: LadderConfig, sp: dict[str, list[Example]], fit: FitFn, checkpointer: Any = None
) -> Any:
    """label → train → evaluate → promote, then the next rung or END. Invoke with {"rung": 0}."""
    nodes = LadderNodes(cfg, sp, fit)
    g = StateGraph(LadderState)
    g.add_node("label", nodes.label)
    g.add_node("train", nodes.train_rung)
    g.add_node("evaluate", nodes.evaluate)
    g.add_node("promote", nodes.promote)
    g.add_edge(START, "label")
    g.add_edge("label", "train")
    g.add_edge("train", "evaluate")
    g.add_edge("evaluate", "promote")
    g.add_conditional_edges("promote", nodes.route_rung, ["label", END])
    return g.compile(checkpointer=checkpointer)


def sp_name(label_split: str, k: int) -> str:
    """The data split behind a label split: `train` is rung k's rows."""
    return slice_name(k) if label_split == "train" else label_split


def _check_column(cfg: LadderConfig, sp: dict[str, list[Example]]) -> None:
    """The oversight column must label every row a student learns from or is selected on."""
    if cfg.oversight is None:
        return
    for split in [*(slice_name(k) for k in range(1, len(cfg.rungs))), "val"]:
        try:
            label_source(sp[split], cfg.oversight.column)
        except DataError as e:
            raise DataError(f"oversight.column: {e}") from None


def run_ladder(
    cfg: LadderConfig,
    *,
    resolve: Callable[[str], str] = str,
    force: bool = False,
    fit: FitFn | None = None,
    on_step: Callable[[int, str], None] | None = None,
) -> LadderResult:
    """Run the ladder, resuming its checkpoint when an earlier run of the same config was cut
    short, or load it when its run folder is complete (unless `force`). `fit` replaces the real
    trainer (tests wrap it); `on_step(rung, node)` is told of each finished node."""
    t0 = time.perf_counter()
    sp = ladder_splits(cfg)
    _check_column(cfg, sp)
    rid, run_dir, finished = open_run(cfg, sp, LadderResult, force)
    if finished is not None:
        return finished
    db = run_dir / "checkpoints.sqlite"
    if force:
        for p in (run_dir / DONE, db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            p.unlink(missing_ok=True)
    with ExitStack() as done:
        saver = sqlite_saver(db)
        done.callback(saver.conn.close)
        rungs = RungFitter(cfg, sp, resolve, done.enter_context(tracked(cfg.tracking, run_dir, cfg)))
        graph = build_ladder_graph(cfg, sp, fit or rungs, checkpointer=saver)
        # One thread per config; the recursion limit counts nodes: 4 per rung.
        conf: Any = {"configurable": {"thread_id": rid}, "recursion_limit": 4 * len(cfg.rungs) + 8}
        snap = graph.get_state(conf)
        if snap.values and not snap.next:  # finished, but killed before the report was written
            state = snap.values
        else:
            if snap.next:
                log.info("resuming %s at rung %d, node %s", run_dir, snap.values["rung"], snap.next[0])
            start = None if snap.next else {"rung": 0}
            at = 4 * snap.values["rung"] + NODES.index(snap.next[0]) if snap.next else 0
            last = len(cfg.rungs) - 1
            with track(f"ladder {cfg.name}", 4 * len(cfg.rungs), unit="nodes", start=at) as progress:
                # durability="sync": each checkpoint is on disk before the next node starts.
                for update in graph.stream(start, conf, stream_mode="updates", durability="sync"):
                    for node in update:
                        k = progress.done // 4
                        progress.advance()
                        if node == "promote":
                            progress.note(f"rung {k}/{last} {cfg.rungs[k].name} done")
                        if on_step is not None:
                            on_step(graph.get_state(conf).values["rung"], node)
            state = graph.get_state(conf).values
    result = LadderResult(
        run_id=rid,
        rungs=[r.name for r in cfg.rungs],
        arms=cfg.arms(),
        results=[RungResult.model_validate(x) for x in state["results"]],
        sizes={k: len(v) for k, v in sp.items()},
        seconds=time.perf_counter() - t0,
    )
    write_run(result, state["columns"], sp, run_dir)
    write_curves(rungs.histories, run_dir / "curves.png")
    mark_complete(run_dir, result)
    return result
