"""The Python API: what `w2sg label`, `w2sg train` and `w2sg run` do, from a notebook or script.

Each function takes a config object, a dict or a YAML path, validates it with the same pydantic
models as the CLI (`load_config`: every error names the file or `<dict>` and the field), resolves
every model name before any compute, and runs the same code as the command, writing the same run
folders and label stores, so a result made here is reused by the CLI and the other way round::

    from oversight import api

    rows = api.load_dataset("sciq", split="test")
    labels = api.label({"kind": "debate", "protocol": "blind", "judge": "scripted/judge"}, rows[:20])
    result = api.train_w2sg("configs/w2sg-sciq.yaml", labels={"blind": labels})

docs/python-api.md walks through it; examples/quickstart.py runs it end to end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Collection, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from agents import ConfigError
from agents import load_config as load_yaml_config
from agents.config import apply_overrides, format_validation_error
from agents.names import check_config_models, resolve_model_path
from oversight.labelling.label import LabelRun
from w2sg.data import Example
from w2sg.datasets import DatasetSpec, load_split, parse_spec

if TYPE_CHECKING:
    from oversight.experiments.run.config import RunConfig
    from oversight.experiments.run.results import PipelineResult
    from w2sg.experiment import W2SGConfig
    from w2sg.results import ExperimentResult, SeedsResult

C = TypeVar("C", bound=BaseModel)
T = TypeVar("T")
#: A config as the API takes it: the config object, a dict of its fields, or a YAML file.
ConfigLike = BaseModel | Mapping[str, Any] | str | Path

__all__ = [
    "ConfigLike",
    "Labels",
    "label",
    "load_config",
    "load_dataset",
    "run",
    "train_w2sg",
    "w2sg_splits",
]


def load_config(
    config: ConfigLike,
    cls: type[C],
    overrides: Sequence[str] = (),
    *,
    check: bool = True,
    ignore: Collection[str] = (),
) -> C:
    """`config` as a `cls` (e.g. `W2SGConfig`, `RunConfig`, `LabelConfig`), as every command loads
    its file: validated (errors name the file, or `<dict>`, and the field), `overrides` applied
    (`key.path=value`, the CLI's `--set`), and unless `check=False` every model name and path
    resolved, so a typo fails here before any compute. `ignore`: dotted fields not checked."""
    where = f"<{cls.__name__}>"
    if isinstance(config, cls):
        cfg = config
    elif isinstance(config, BaseModel):
        raise ConfigError(
            f"a {type(config).__name__} where a {cls.__name__}, a dict or a YAML path is needed"
        )
    elif isinstance(config, Mapping):
        where = "<dict>"
        try:
            cfg = cls.model_validate(dict(config))
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, where, cls)) from None
    else:
        where = str(config)
        cfg = load_yaml_config(config, cls, overrides=overrides)
        overrides = ()  # applied by the file's loader, its paths relative to the working directory
    if overrides:
        cfg = apply_overrides(cfg, overrides, where)
    if check:
        check_config_models(cfg, where, ignore=ignore)
    return cfg


def load_dataset(
    dataset: str | Path | DatasetSpec | Mapping[str, Any], split: str = "test", *, seed: int = 0
) -> list[Example]:
    """One split of a dataset as rows (`Example`: question, candidate answer, gold label, passage,
    recorded label sources), validated and deduplicated as every command reads it. `dataset`: a
    registry name ("sciq", "boolq", ...), a file or folder, a `DatasetSpec`, or its fields as a
    dict (`{"name": "sciq", "path": "../shared/data/sciq"}`); `seed` picks SciQ's distractor."""
    if isinstance(dataset, DatasetSpec):
        spec = dataset
    elif isinstance(dataset, Mapping):
        spec = load_config(dataset, DatasetSpec, check=False)
    else:
        spec = parse_spec(str(dataset))
    return load_split(spec, split, seed=seed)


class Labels(BaseModel):
    """What `label` returns: the labelling run (counts, cost, label quality against gold) and each
    labelled row's p(true) (rows that failed have none), from the store they are kept in."""

    run: LabelRun
    p_true: dict[str, float]
    store: Path

    def __len__(self) -> int:
        return len(self.p_true)


def label(
    graph: BaseModel | Mapping[str, Any] | None = None,
    rows: Sequence[Example] | None = None,
    models: Mapping[str, Any] | None = None,
    *,
    config: ConfigLike | None = None,
    replay: bool = False,
    **fields: Any,
) -> Labels:
    """`w2sg label`: run an oversight graph over `rows` (else the config's dataset selection) into
    the durable store (`store=`, default runs/labels.sqlite; a rerun resumes and labels only what
    is missing). `graph`: a graph spec or its fields (`{"kind": "debate", "protocol": "blind",
    "judge": "scripted/judge"}`); `models`: named model specs the graph refers to; `fields`: any
    other `LabelConfig` field (store, concurrency, name, ...). Or `config`: a label config (object,
    dict or YAML path), which `graph`, `models` and `fields` then override."""
    from oversight.labelling import label as labelling
    from oversight.labelling.label import LabelConfig
    from oversight.labelling.store import LabelStore

    given = {k: v for k, v in (("graph", graph), ("models", models)) if v is not None} | fields
    if config is not None:  # its fields as written (paths rebased on the file), `given` over them
        given = load_config(config, LabelConfig, check=False).model_dump(exclude_unset=True) | given
    cfg = load_config(given, LabelConfig)
    done = _sync(labelling.label(cfg, replay=replay, rows=rows))
    store = LabelStore(cfg.store)
    try:
        p_true = store.p_true(cfg.protocol, done.config_hash)
    finally:
        store.close()
    return Labels(run=done, p_true=p_true, store=cfg.store)


def w2sg_splits(config: ConfigLike, overrides: Sequence[str] = ()) -> dict[str, list[Example]]:
    """The splits a W2SG experiment runs on (weak, strong, val, dev, test), as `train_w2sg` draws
    them: label `strong`, `val` and `dev` to train a student on your labels."""
    from w2sg.experiment import W2SGConfig, prepare_splits

    return prepare_splits(load_config(config, W2SGConfig, overrides, check=False))


def train_w2sg(
    config: ConfigLike,
    *,
    labels: Mapping[str, Labels | Mapping[str, float]] | None = None,
    overrides: Sequence[str] = (),
    force: bool = False,
) -> ExperimentResult | SeedsResult:
    """`w2sg train`: weak teacher, labels, strong students per label source and loss, ceiling, PGR,
    in the run folder under `out_dir` (a complete one is loaded unless `force`). `labels`: label
    sources made in code (source name → `Labels` or row id → p(true)), joined to the rows they
    cover and added to `label_sources`; every row of strong, val and dev needs one. With `seeds:`
    in the config: every seed and their aggregate (`SeedsResult`)."""
    from w2sg.experiment import W2SGConfig

    cfg = load_config(config, W2SGConfig, overrides)
    given = {name: (x.p_true if isinstance(x, Labels) else x) for name, x in (labels or {}).items()}
    if missing := [name for name in given if name not in cfg.label_sources]:
        cfg = cfg.model_copy(update={"label_sources": [*cfg.label_sources, *missing]})
    return run_w2sg(cfg, force=force, labels=given)


def run_w2sg(
    cfg: W2SGConfig, *, force: bool = False, labels: Mapping[str, Mapping[str, float]] | None = None
) -> ExperimentResult | SeedsResult:
    """A loaded W2SG config's run, one seed or every seed of `seeds:` (what `w2sg train`,
    `w2sg ensemble` and `train_w2sg` call)."""
    from w2sg.experiment import run_experiment

    def run_one(c: W2SGConfig) -> ExperimentResult:
        return run_experiment(c, resolve=resolve_model_path, force=force, labels=labels)

    return _seeded(cfg, run_one, force)


def run(
    config: ConfigLike, *, overrides: Sequence[str] = (), force: bool = False
) -> PipelineResult | SeedsResult:
    """`w2sg run`: the end-to-end experiment (judges, graph and teacher labels, calibration,
    students, ceiling, one report) in its run folder. With `seeds:`: every seed and their
    aggregate (`SeedsResult`; each seed's `PipelineResult` is in its own folder)."""
    from oversight.experiments.run.config import RunConfig
    from oversight.experiments.run.runner import run_pipeline

    cfg = load_config(config, RunConfig, overrides)
    if cfg.seeds is None:
        return run_pipeline(cfg, resolve=resolve_model_path, force=force)

    def run_one(c: RunConfig) -> ExperimentResult:
        return run_pipeline(c, resolve=resolve_model_path, force=force).experiment

    return _seeded(cfg, run_one, force)


def _seeded(cfg: Any, run_one: Any, force: bool) -> Any:
    """`run_one(cfg)`, or with `seeds:` every seed's and their aggregate."""
    if cfg.seeds is None:
        return run_one(cfg)
    from w2sg.seeds import run_seeds

    return run_seeds(cfg, run_one, force=force)


def _sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from plain code, or from a notebook, whose own event loop is
    running (asyncio.run refuses there): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
