"""`GridConfig`: the axes of a grid and the base every cell starts from; `cells()` expands them."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from agents.config import ModelRef, ModelSpec
from graphs.kinds import AnyGraph
from oversight.labelling import shards
from w2sg.config import Experiment
from w2sg.datasets import DatasetSpec
from w2sg.identity import digest

AXES = ("dataset", "judge", "debater", "protocol")
GRAPH = TypeAdapter(AnyGraph)
T = TypeVar("T")


def role_fields(settings: dict[str, Any], where: str) -> tuple[str, str]:
    """(speaker field, judge field) of a protocol's kind: where the debaters and judges axes go
    (a debate's `debater` and `judge`, an interaction's `assistant` and `overseer_model`)."""
    try:
        spec = GRAPH.validate_python(settings)
    except ValidationError as e:
        raise ValueError(f"{where}: {e}") from None
    return spec.ROLE_FIELDS[spec.SPEAKER], spec.ROLE_FIELDS[spec.JUDGE]


class Cell(BaseModel):
    """One cell: its place on each axis, the config it runs, and the folder it runs in."""

    model_config = ConfigDict(frozen=True)

    axes: dict[str, str]
    kind: Literal["label", "run"]
    config: dict[str, Any] = Field(
        description="a LabelConfig (label cells) or RunConfig (run cells), as data"
    )
    id: str = Field(description="hash of the config: the cell's folder name")


class GridConfig(Experiment):
    name: str = "grid"
    out_dir: Path = Field(Path("runs"), description="the grid's folder is <out_dir>/<name>/")
    models: dict[str, ModelSpec] = Field(default_factory=dict, description="named models every cell may use")
    judges: dict[str, ModelRef] = Field(description="axis: name → the judge model of the cell's graph")
    debaters: dict[str, Any] = Field(
        description="axis: name → the speaker of the cell's graph (a debate's debater, both sides)"
    )
    protocols: dict[str, dict[str, Any]] = Field(
        description="axis: name → the graph's settings (kind: debate, protocol, rounds, ...), less "
        "the speaker and judge fields (a debate's debater and judge, an interaction's assistant and "
        "overseer_model), which the other axes set"
    )
    datasets: dict[str, DatasetSpec] | None = Field(
        None, description="axis: name → the dataset (docs/datasets.md); None: the base's dataset"
    )
    label: dict[str, Any] | None = Field(
        None,
        description="label cells: the base `w2sg label` config (split, questions, seed, "
        "concurrency, ...); each cell gives label accuracy",
    )
    run: dict[str, Any] | None = Field(
        None,
        description="run cells: the base `w2sg run` config (sizes, judge_training, weak, strong, "
        "...) with no protocols; each cell's one graph is its protocols: entry, and it gives label "
        "accuracy and the student's PGR",
    )

    @model_validator(mode="after")
    def _check(self) -> GridConfig:
        if (self.label is None) == (self.run is None):
            raise ValueError(
                "give exactly one of `label:` (label cells) or `run:` (cells that train a student)"
            )
        for axis in ("judges", "debaters", "protocols"):
            if not getattr(self, axis):
                raise ValueError(f"{axis}: an axis needs at least one entry")
        for p, graph in self.protocols.items():
            if fixed := sorted(set(role_fields(graph, f"protocols.{p}")) & set(graph)):
                raise ValueError(f"protocols.{p}: {', '.join(fixed)} come from the judges / debaters axes")
        base = self.label if self.label is not None else self.run
        if "protocols" in (base or {}) or "graph" in (self.label or {}):
            raise ValueError("the base config's graph comes from the axes; leave out graph / protocols")
        self.cells()  # every cell's config is validated here, naming the cell
        return self

    @property
    def grid_dir(self) -> Path:
        return self.out_dir / self.name

    def cells(self) -> list[Cell]:
        """Every cell, in a fixed order (datasets, judges, debaters, protocols), each validated."""
        from oversight.experiments.run.config import RunConfig
        from oversight.labelling.label import LabelConfig

        datasets: dict[str, DatasetSpec | None] = dict(self.datasets or {"-": None})
        out, seen = [], set()
        for (dn, ds), jn, dbn, pn in itertools.product(
            datasets.items(), self.judges, self.debaters, self.protocols
        ):
            speaker, judge = role_fields(self.protocols[pn], f"protocols.{pn}")
            graph = {**self.protocols[pn], judge: self.judges[jn], speaker: self.debaters[dbn]}
            if GRAPH.validate_python(graph).speaker_model is None:  # e.g. a blind judge hears no
                del graph[speaker]  # debater: the debaters axis does not apply, one cell per judge
                dbn = "-"
            axes = {"dataset": dn, "judge": jn, "debater": dbn, "protocol": pn}
            models = {k: v.model_dump(mode="json", exclude_unset=True) for k, v in self.models.items()}
            if self.label is not None:
                kind: Literal["label", "run"] = "label"
                data: dict[str, Any] = {**self.label, "models": models, "graph": graph}
                cls: type[BaseModel] = LabelConfig
            else:
                kind = "run"
                data = {**(self.run or {}), "models": models, "protocols": {pn: graph}}
                cls = RunConfig
            if ds is not None:
                data["dataset"] = ds.model_dump(mode="json", exclude_unset=True)
            where = "cell " + " / ".join(f"{a}={v}" for a, v in axes.items() if v != "-")
            try:
                cfg = cls.model_validate(data)
            except ValidationError as e:
                raise ValueError(f"{where}: {e}") from None
            # How fast a cell runs, and where its progress is logged (tracking), change no result:
            # they stay out of its id.
            blob = cfg.model_dump_json(exclude={"concurrency", "store", "out_dir", "name", "tracking"})
            cid = digest(f"{kind}|{blob}", 12)
            if cid in seen:
                continue
            seen.add(cid)
            config = cfg.model_dump(mode="json", exclude_unset=True)  # validates again as it was
            out.append(Cell(axes=axes, kind=kind, config=config, id=cid))
        return out


def shard(cells: list[T], spec: str | None) -> list[T]:
    """The cells of shard `i/n` (`oversight.labelling.shards.pick`): every n-th cell from the i-th,
    so each shard gets a mix of slow and fast cells. None: all. Any list of cells (a grid's, a
    leaderboard's)."""
    return shards.pick(cells, spec)
