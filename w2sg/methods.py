"""W2SG methods as plugins: what a strong student learns from, given one label source.

A method sees the strong pool and the val rows with the source's p(true) (weak teacher, ensemble,
recorded column or oversight protocol alike) and never gold: `MethodInput` holds `BlindRow`s,
whose gold accessors raise `GoldAccessError` naming the method. It may read the frozen features
of the strong (or weak) model on those rows and train fresh strong students on labels of its own
(`MethodInput.fit_student`). It returns the labels, row subset and weights the student trains on,
and those it is selected on (`Supervision`). The experiment then trains one student per (label
source, loss, method), so a loss of `w2sg.losses` combines with any method.

Registered here (docs/methods.md gives each one's source and assumptions):
- `vanilla`: the source's labels as they are (every student before methods existed);
- `confident_only`: only the rows whose label is far from 1/2 (a top share, or a threshold);
- `probe_relabel`, `probe_filter`: a kNN or logistic probe on the strong model's frozen features,
  fitted on the weak labels, replaces them or drops the `contamination` share it disagrees with
  most (EleutherAI/w2s `probe.py`);
- `s2s`: strong-to-strong iterations, each a fresh student trained on the last one's predictions
  (EleutherAI/w2s `s2s_iters`).
A new method is a `Method` subclass with a `kind` literal, registered with `@register_method`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NoReturn, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SerializeAsAny, model_validator

from w2sg.data import Example
from w2sg.results import VANILLA


class GoldAccessError(RuntimeError):
    """A method read gold (a row's label, its recorded columns or record): methods get none."""


@dataclass(frozen=True, slots=True)
class BlindRow:
    """A row as a method sees it: its text and ids, no gold. `label`, `labels` (recorded label
    columns, which could be any supervisor's, gold included) and `source` (the record's columns,
    which hold the answer key) raise."""

    id: str
    qid: str
    question: str
    answer: str
    support: str
    method: str = field(repr=False)

    @classmethod
    def of(cls, e: Example, method: str) -> BlindRow:
        return cls(e.id, e.qid, e.question, e.answer, e.support, method)

    def _refuse(self, what: str) -> NoReturn:
        raise GoldAccessError(
            f"method {self.method!r} read the {what} of row {self.id}: a method gets the label "
            "source's p(true) (MethodInput.strong.labels), never gold"
        )

    @property
    def label(self) -> NoReturn:
        self._refuse("gold label")

    @property
    def labels(self) -> NoReturn:
        self._refuse("recorded label columns")

    @property
    def source(self) -> NoReturn:
        self._refuse("source record")


@dataclass(frozen=True)
class Pool:
    """One split as a method sees it: its rows and the label source's p(true) on them (read-only)."""

    split: str
    rows: tuple[BlindRow, ...]
    labels: np.ndarray


def blind_pool(split: str, rows: list[Example], labels: np.ndarray, method: str) -> Pool:
    p = np.array(labels, dtype=float)  # a copy: the method cannot change the source's column
    p.flags.writeable = False
    return Pool(split, tuple(BlindRow.of(e, method) for e in rows), p)


@dataclass(frozen=True)
class MethodInput:
    """What a method gets: the strong pool and val rows with one source's labels, the loss the
    student will use, the models' frozen features, and a way to train a fresh strong student."""

    method: str
    source: str
    loss: str
    strong: Pool
    val: Pool
    _features: Callable[[str, str], np.ndarray] = field(repr=False)
    _fit: Callable[[np.ndarray, np.ndarray, str], tuple[np.ndarray, np.ndarray]] = field(repr=False)

    def features(self, split: str = "strong", model: Literal["strong", "weak"] = "strong") -> np.ndarray:
        """(rows, H) frozen features of `model` on the rows of `split` (strong or val), read from
        the feature cache the students use (`w2sg.features`)."""
        if split not in ("strong", "val"):
            raise ValueError(f"method {self.method!r}: features of {split!r}; a method sees strong and val")
        return self._features(model, split)

    def fit_student(
        self, strong: np.ndarray, val: np.ndarray, what: str = "student"
    ) -> tuple[np.ndarray, np.ndarray]:
        """A fresh strong student (the experiment's model, loss and seed) trained on `strong`
        p(true) over the strong pool and selected on `val` p(true) (or on gold val, when the
        config selects on gold): its p(true) on the strong and val rows."""
        return self._fit(np.asarray(strong, float), np.asarray(val, float), what)


@dataclass(frozen=True)
class Labels:
    """What a student learns (or is selected) from on one split: p(true) per row, the rows to use
    (`keep`, a boolean mask; None = all) and per-row weights (None = equal)."""

    p: np.ndarray
    keep: np.ndarray | None = None
    weights: np.ndarray | None = None

    def checked(self, n: int, where: str) -> Labels:
        p = np.asarray(self.p, dtype=float)
        if p.shape != (n,) or not np.all((p >= 0) & (p <= 1)):
            raise ValueError(f"{where}: labels must be {n} p(true) in [0, 1], got shape {p.shape}")
        keep = None if self.keep is None else np.asarray(self.keep)
        if keep is not None and (keep.shape != (n,) or keep.dtype != bool or not keep.any()):
            raise ValueError(f"{where}: keep must be a boolean mask of {n} rows keeping at least one")
        w = None if self.weights is None else np.asarray(self.weights, dtype=float)
        if w is not None and (w.shape != (n,) or not np.all(np.isfinite(w)) or (w < 0).any()):
            raise ValueError(f"{where}: weights must be {n} finite non-negative numbers")
        return Labels(p, keep, w)

    def rows(self) -> np.ndarray:
        """Indices of the rows kept."""
        return np.arange(len(self.p)) if self.keep is None else np.flatnonzero(self.keep)


@dataclass(frozen=True)
class Supervision:
    """A method's answer: the student's training labels (strong pool) and selection labels (val)."""

    strong: Labels
    val: Labels


class Method(BaseModel, ABC):
    """A W2SG method's settings (a config entry) and what it does (`supervise`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    name: str | None = Field(
        None,
        description="the label of its students in results (default: kind); set it to run one "
        "method twice with other settings",
    )

    @property
    def label(self) -> str:
        return self.name or self.kind

    @abstractmethod
    def supervise(self, inp: MethodInput) -> Supervision: ...


METHODS: dict[str, type[Method]] = {}
M = TypeVar("M", bound=type[Method])


def register_method(cls: M) -> M:
    """Register a `Method` subclass under its `kind` (a Literal field with that default)."""
    kind = cls.model_fields["kind"].default
    if not isinstance(kind, str) or kind in METHODS:
        raise ValueError(f"{cls.__name__}: kind must be a new method name, got {kind!r}")
    METHODS[kind] = cls
    return cls


def build_method(value: Any) -> Any:
    """A config entry as a method: its kind alone (`probe_filter`) or a mapping with settings."""
    if isinstance(value, Method):
        return value
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict) or "kind" not in value:
        raise ValueError(f"a method is a name or a mapping with `kind`, got {value!r}")
    if value["kind"] not in METHODS:
        raise ValueError(f"unknown method {value['kind']!r}; registered: {', '.join(METHODS)}")
    return METHODS[value["kind"]].model_validate(value)


#: A config's method entry: any registered method, serialized with all its settings.
MethodSpec = Annotated[SerializeAsAny[Method], BeforeValidator(build_method)]


@register_method
class Vanilla(Method):
    """The source's labels as they are, on every row."""

    kind: Literal["vanilla"] = VANILLA

    def supervise(self, inp: MethodInput) -> Supervision:
        return Supervision(Labels(inp.strong.labels), Labels(inp.val.labels))


def most_confident(p: np.ndarray, share: float | None, threshold: float | None) -> np.ndarray:
    """Mask of the rows whose p(true) is farthest from 1/2: the top `share` (at least one row;
    ties keep the earlier row) or those with |p - 1/2| >= `threshold`."""
    margin = np.abs(np.asarray(p, float) - 0.5)
    if threshold is not None:
        return margin >= threshold
    assert share is not None
    keep = np.zeros(len(margin), dtype=bool)
    keep[np.argsort(-margin, kind="stable")[: max(1, round(share * len(margin)))]] = True
    return keep


@register_method
class ConfidentOnly(Method):
    """Train (and select) only on confident labels: Anthropic's automated W2S researcher baseline
    `train_only_on_confident_labels` (safety-research/automated-w2s-research)."""

    kind: Literal["confident_only"] = "confident_only"
    share: float | None = Field(
        None, gt=0, le=1, description="keep this top share by |p - 1/2| (default 0.5)"
    )
    threshold: float | None = Field(None, ge=0, lt=0.5, description="or keep rows with |p - 1/2| >= this")

    @model_validator(mode="before")
    @classmethod
    def _one_rule(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if data.get("share") is not None and data.get("threshold") is not None:
                raise ValueError("confident_only: give share or threshold, not both")
            if data.get("share") is None and data.get("threshold") is None:
                data = {**data, "share": 0.5}
        return data

    def supervise(self, inp: MethodInput) -> Supervision:
        def pick(pool: Pool) -> Labels:
            keep = most_confident(pool.labels, self.share, self.threshold)
            if not keep.any():
                raise ValueError(
                    f"method {self.label!r}: no {pool.split} label of source {inp.source!r} has "
                    f"|p - 1/2| >= {self.threshold}; lower the threshold"
                )
            return Labels(pool.labels, keep)

        return Supervision(pick(inp.strong), pick(inp.val))


def knn_predict(
    train: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, k: int, self_too: bool
) -> torch.Tensor:
    """Mean label of each query row's k nearest training rows (Euclidean). `self_too` False: the
    query rows are the training rows and none counts as its own neighbour (leave one out)."""
    k = min(k, len(train) - (0 if self_too else 1))
    out = []
    for s in range(0, len(query), 1024):  # blocks: a (1024, N) distance matrix at a time
        d = torch.cdist(query[s : s + 1024], train)
        if not self_too:
            d[torch.arange(d.shape[0]), torch.arange(s, s + d.shape[0])] = float("inf")
        out.append(labels[d.topk(k, largest=False).indices].mean(-1))
    return torch.cat(out)


def logistic_probe(x: torch.Tensor, y: torch.Tensor, l2: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logistic regression on standardized features with soft targets, mean cross entropy plus
    `l2` ||w||^2 (EleutherAI/w2s `LogisticProbe`, l2p), fitted by L-BFGS; returns p(true) of rows."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w, b = w.detach(), b.detach()
    return lambda q: torch.sigmoid(((q - mu) / sd) @ w + b)


class ProbeMethod(Method):
    """A probe on the strong model's frozen features, fitted on the source's labels over the
    strong pool: `knn` (mean label of the k nearest rows) or `logreg` (logistic regression)."""

    probe: Literal["knn", "logreg"] = "knn"
    k: int = Field(20, ge=1, description="knn: neighbours per row (EleutherAI/w2s: 20)")
    l2: float = Field(1e-3, ge=0, description="logreg: L2 penalty (EleutherAI/w2s l2p: 1e-3)")

    def probe_predictions(self, inp: MethodInput) -> tuple[np.ndarray, np.ndarray]:
        """The probe's p(true) on the strong rows (each row left out of its own kNN vote) and val."""
        xs = torch.as_tensor(inp.features("strong"), dtype=torch.float32)
        xv = torch.as_tensor(inp.features("val"), dtype=torch.float32)
        y = torch.tensor(inp.strong.labels, dtype=torch.float32)  # a copy: the labels are read-only
        if self.probe == "knn":
            ps, pv = knn_predict(xs, y, xs, self.k, False), knn_predict(xs, y, xv, self.k, True)
        else:
            f = logistic_probe(xs, y, self.l2)
            ps, pv = f(xs), f(xv)
        return ps.double().numpy().clip(0, 1), pv.double().numpy().clip(0, 1)


@register_method
class ProbeRelabel(ProbeMethod):
    """Replace the labels by the probe's p(true), on the strong pool and val (EleutherAI/w2s
    `probe_relabel`)."""

    kind: Literal["probe_relabel"] = "probe_relabel"

    def supervise(self, inp: MethodInput) -> Supervision:
        ps, pv = self.probe_predictions(inp)
        return Supervision(Labels(ps), Labels(pv))


def least_contaminated(labels: np.ndarray, probe: np.ndarray, contamination: float) -> np.ndarray:
    """Mask without the int(contamination · n) rows whose label is farthest from the probe's."""
    disagree = np.abs(np.asarray(probe) - np.asarray(labels))
    keep = np.ones(len(disagree), dtype=bool)
    keep[np.argsort(-disagree, kind="stable")[: int(contamination * len(disagree))]] = False
    return keep


@register_method
class ProbeFilter(ProbeMethod):
    """Drop the `contamination` share of rows whose labels the probe disagrees with most, on the
    strong pool and val; the kept rows keep their labels (EleutherAI/w2s `probe_filter`)."""

    kind: Literal["probe_filter"] = "probe_filter"
    contamination: float = Field(0.1, ge=0, lt=1, description="share of rows dropped (EleutherAI/w2s: 0.1)")

    def supervise(self, inp: MethodInput) -> Supervision:
        ps, pv = self.probe_predictions(inp)
        return Supervision(
            Labels(inp.strong.labels, least_contaminated(inp.strong.labels, ps, self.contamination)),
            Labels(inp.val.labels, least_contaminated(inp.val.labels, pv, self.contamination)),
        )


@register_method
class StrongToStrong(Method):
    """`iterations` strong students in a row, each trained on the last one's p(true) over the
    strong pool (the first on the source's labels) and selected on its p(true) over val; the
    experiment's student learns from the last (EleutherAI/w2s `s2s_iters`)."""

    kind: Literal["s2s"] = "s2s"
    iterations: int = Field(1, ge=1, description="students before the final one (EleutherAI/w2s s2s_iters)")

    def supervise(self, inp: MethodInput) -> Supervision:
        ps, pv = inp.strong.labels, inp.val.labels
        for i in range(self.iterations):
            ps, pv = inp.fit_student(ps, pv, what=f"s2s {i + 1}/{self.iterations}")
        return Supervision(Labels(ps), Labels(pv))
