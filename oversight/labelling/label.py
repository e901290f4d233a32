"""`w2sg label CONFIG`: run an oversight graph (debate, consultancy, blind judge, N-agent debate,
interaction) over a dataset split with bounded concurrency, writing each verdict to the durable
store as soon as it exists. A killed run resumes with no label lost or duplicated; with the
models' record cache, `replay` rebuilds every label bit for bit without calling a model.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field, model_validator

from agents import Model, ModelSpec, closing_all, get_model
from agents.backends.classifier import classifier_dir
from agents.config import CacheConfig, Config, resolve_spec, spec_identity
from agents.names import check_model_names
from graphs.invoke import invoke_recorded
from graphs.kinds import AnyGraph
from graphs.spec import GraphSpec
from oversight.labelling import human, shards
from oversight.labelling.claims import Claims
from oversight.labelling.human import HumanRules
from oversight.labelling.open_sides import OpenSides, open_sides
from oversight.labelling.provenance import label_row
from oversight.labelling.store import LabelRow, LabelStore
from oversight.labelling.tracking import LabelProgress, tracking_dir
from w2sg.data import DataError, Example, fingerprint, split_by_question
from w2sg.datasets import DatasetSpec, dataset_field, load_split
from w2sg.identity import digest
from w2sg.metrics import LabelQuality, label_quality
from w2sg.progress import track
from w2sg.tracking import TrackingConfig, tracked, tracking_field


class LabelConfig(Config):
    name: str = "labels"
    dataset: DatasetSpec = dataset_field()
    split: str = Field("test", description="the dataset's split (SciQ offline: only test has passages)")
    questions: int | None = Field(
        None, ge=1, description="label this many questions (2 rows each); None: all"
    )
    seed: int = 0
    models: dict[str, ModelSpec] = Field(
        default_factory=dict,
        description="named model specs (cache, limits, ...); graphs refer to them by name",
    )
    graph: AnyGraph = Field(description="the oversight graph: `kind:` debate or interaction, then its fields")
    concurrency: int = Field(
        16, ge=1, description="rows in flight at once (with rows_per_graph > 1: one batch more)"
    )
    rows_per_graph: int = Field(
        1,
        ge=1,
        description="rows per graph run (graphs.batch): each run costs ~1 ms of client CPU, so "
        "against a fast local server 8-16 keeps the client from being the bottleneck; rows move "
        "in lockstep, so keep 1 where call latency varies widely. Labels do not change.",
    )
    store: Path = Path("runs/labels.sqlite")
    lease_s: float = Field(
        60.0,
        gt=0,
        description="seconds a row claimed by a worker stays its own without a renewal (runs sharing "
        "`store` split its rows; a dead worker's rows return after this, at once on this machine)",
    )
    human: HumanRules = Field(
        default_factory=HumanRules,
        description="a graph a person judges: what each verdict must carry (its items wait in `store`)",
    )
    tracking: TrackingConfig = tracking_field()

    # Labelling progress changes no label. config_hash hashes only the graph and its models, so
    # this is for any whole-config id (w2sg.identity) that ever takes a LabelConfig.
    ID_EXCLUDE: ClassVar[dict[str, Any]] = {"tracking": True}

    @model_validator(mode="after")
    def _check(self) -> LabelConfig:
        check_model_names(self.graph.model_names("graph."), self.models)
        if self.rows_per_graph > self.concurrency:
            n, c = self.rows_per_graph, self.concurrency
            raise ValueError(f"rows_per_graph ({n}) exceeds concurrency ({c}): rows in flight")
        if self.rows_per_graph > 1 and not self.graph.lockstep:
            raise ValueError(
                "rows_per_graph > 1 needs rows that move in lockstep; this graph routes on each "
                "reply (e.g. max_followups > 0): use rows_per_graph: 1"
            )
        return self

    @property
    def protocol(self) -> str:
        return self.graph.protocol_name

    def config_hash(self, data: str) -> str:
        """What changes a label: the graph config, the specs of the models it names, and the rows
        it labels (`data`, their `w2sg.data.fingerprint`): other data is never served old labels.
        Version 1 of the identity (`w2sg.identity`), as every store so far."""
        # How a model is called (retries, limits, cache, price) does not change its labels: a run
        # resumed with more retries keeps its store. An inline spec enters as its identity too.
        fields = self.graph.ROLE_FIELDS.values()
        inline = {f: spec_identity(r) for f in fields if isinstance(r := getattr(self.graph, f), ModelSpec)}
        deeper = self.graph.identity_exclude() or None  # e.g. an inline spec inside a debater mapping
        graph = self.graph.model_copy(update=dict.fromkeys(inline, "")).model_dump_json(exclude=deeper)
        specs = {k: spec_identity(v) for k, v in sorted(self.models.items())}
        tail = f"|{inline}" if inline else ""  # configs without inline specs keep their hashes
        return digest(f"{graph}|{specs}|{data}{tail}", 12)


class LabelRun(BaseModel):
    protocol: str
    config_hash: str
    excluded: int = Field(0, description="rows left out: their questions trained a judge of this graph")
    total: int
    already_done: int
    labelled: int
    failed: int
    seconds: float
    usage: dict[str, dict[str, float]]
    quality: LabelQuality | None = Field(None, description="the selected rows' labels against gold")
    open_sides: OpenSides | None = Field(
        None, description="sides: open: the protagonist's choice against gold, judge accuracy split by it"
    )
    pending: int = Field(0, description="rows waiting for a person's verdict (a graph a person judges)")
    elsewhere: int = Field(0, description="rows another run sharing the store labelled meanwhile")

    @property
    def tokens(self) -> float:
        """Tokens in and out of every call this run made, all roles."""
        return sum(u.get("input_tokens", 0) + u.get("output_tokens", 0) for u in self.usage.values())

    @property
    def cost_usd(self) -> float:
        """What this run's calls cost, from the models' `price:` (0 without prices)."""
        return sum(u.get("cost_usd", 0.0) for u in self.usage.values())

    def figures(self) -> dict[str, float]:
        """The run's final figures, as `w2sg label` prints them (a tracker's summary)."""
        out = {
            "rows": float(self.total),
            "labelled": float(self.labelled),
            "failed": float(self.failed),
            "already_done": float(self.already_done),
            "seconds": self.seconds,
            "tokens": float(self.tokens),
            "cost_usd": float(self.cost_usd),
        }
        if (q := self.quality) is not None:
            a = q.accuracy
            out |= {
                "accuracy": a.value,
                "accuracy_lo": a.lo,
                "accuracy_hi": a.hi,
                "ece": q.ece,
                "brier": q.brier,
            }
        return {f"{self.protocol}/{k}": v for k, v in out.items()}


def usage_lines(usage: dict[str, dict[str, float]], where: str = "") -> list[str]:
    """One line per model role of a labelling run: what its calls went through (`UsageStats`)."""
    out = []
    for role, u in usage.items():
        cut = u.get("concurrency_cuts", 0)
        backoff = f", backed off {cut:.0f}x to {u.get('lowest_concurrency', 0):.0f} in flight" if cut else ""
        out.append(
            f"{where}{role}: {u.get('calls', 0):.0f} calls ({u.get('cache_hits', 0):.0f} cached), "
            f"{u.get('retries', 0):.0f} retries, {u.get('timeouts', 0):.0f} timeouts, "
            f"{u.get('overloaded', 0):.0f} 429/503 answers, {u.get('failures', 0):.0f} failed{backoff}"
        )
    return out


def judge_questions(cfg: LabelConfig) -> set[str]:
    """Questions a trained judge of this graph saw in training (its judge.json): labelling them
    would score the judge on its own training data."""
    if (judge := cfg.graph.judge_model) is None:
        return set()
    return trained_on(resolve_spec(judge, cfg.models).name)


def trained_on(model: str) -> set[str]:
    """The questions a `classifier/<dir>` judge was trained on (its judge.json); none for others."""
    folder = classifier_dir(model)
    meta = folder / "judge.json" if folder is not None else None
    if meta is None or not meta.exists():
        return set()
    return set(json.loads(meta.read_text()).get("qids", []))


def require_passages(protocols: dict[str, GraphSpec], what: str) -> None:
    """For rows none of which has a passage (`what`: "60 questions in data.jsonl test"): a
    DataError naming every protocol that needs one and the settings that make it need one."""
    needing = {name: g.passage_settings() for name, g in protocols.items() if g.needs_passage}
    if not needing:
        return
    named = " and ".join(f"{name} ({', '.join(settings)})" for name, settings in needing.items())
    one = len(needing) == 1
    raise DataError(
        f"none of the {what} has a passage, and protocol{'' if one else 's'} {named} "
        f"need{'s' if one else ''} a passage: drop {'it' if one else 'them'}, or set those settings "
        "to false (docs/protocols.md#passages)"
    )


def select_rows(cfg: LabelConfig) -> tuple[list[Example], int]:
    """The rows to label, and how many were left out because a trained judge saw them."""
    rows = load_split(cfg.dataset, cfg.split, seed=cfg.seed)
    if rows and not any(e.support for e in rows):
        require_passages({"graph": cfg.graph}, f"{len(rows)} rows of {cfg.dataset.title} {cfg.split}")
    seen = judge_questions(cfg)
    kept = [e for e in rows if e.qid not in seen]
    excluded = len(rows) - len(kept)
    if cfg.questions is not None:
        kept = split_by_question(kept, {"rows": cfg.questions}, seed=cfg.seed)["rows"]
    return kept, excluded


def _model(spec: ModelSpec, replay: bool) -> Model:
    if replay:
        if spec.cache is None:
            raise ValueError(f"--replay needs a record cache on model {spec.name!r} (its `cache:`)")
        spec = spec.model_copy(update={"cache": CacheConfig(path=spec.cache.path, mode="replay")})
    return get_model(spec)


def selection(cfg: LabelConfig, rows: Sequence[Example] | None = None) -> tuple[list[Example], int, str]:
    """The rows to label (the config's selection, or `rows`), how many were left out because a
    trained judge saw them, and the config hash of labelling them."""
    if rows is None:
        rows, excluded = select_rows(cfg)
    else:
        seen = judge_questions(cfg)
        if leaked := sorted({e.qid for e in rows} & seen):
            raise ValueError(f"{len(leaked)} rows to label trained this graph's judge, e.g. {leaked[0]}")
        excluded = 0
    return list(rows), excluded, cfg.config_hash(fingerprint({"rows": rows}))


async def label(
    cfg: LabelConfig,
    *,
    replay: bool = False,
    rows: Sequence[Example] | None = None,
    shard: str | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_label: Callable[[LabelRow], None] | None = None,
) -> LabelRun:
    """Label every selected row (or the given `rows`) not yet in the store; each verdict is
    committed on its own. Runs sharing the store split the rows between them (`oversight.labelling.claims`).
    `shard` ("i/n"): only that slice of the rows, into the shard's own store
    (`oversight.labelling.shards`), under the config hash of the whole selection, for a merge to join."""
    t0 = time.perf_counter()
    rows, excluded, chash = selection(cfg, rows)
    if cfg.graph.needs_person:
        if replay or shard:
            flag = "--replay" if replay else "--shard"
            raise ValueError(f"{flag} is for model labels: a graph a person judges queues rows in one store")
        return await _queue_for_people(cfg, rows, excluded, chash, on_start, t0)
    if shard is not None:
        rows = shards.pick(rows, shard)
        cfg = cfg.model_copy(update={"store": shards.store_path(cfg.store, shard)})
    with tracked(cfg.tracking, tracking_dir(cfg.store, cfg.protocol, chash), cfg) as tracker:
        store = LabelStore(cfg.store)
        try:
            done = store.done(cfg.protocol, chash)
            todo = [e for e in rows if e.id not in done]
            if on_start is not None:
                on_start(len(rows), len(todo))
            log = LabelProgress(tracker, cfg.protocol, start=len(rows) - len(todo), todo=len(todo))
            did = await _label_rows(cfg, store, todo, chash, replay, on_label, total=len(rows), log=log)
            got = store.p_true(cfg.protocol, chash)
            scores = _scores(cfg, store, rows, chash, got)
        finally:
            store.close()
        run = _run(cfg, rows, excluded, chash, did, got, scores, already=len(rows) - len(todo), t0=t0)
        tracker.summary(run.figures())
    return run


def _run(
    cfg: LabelConfig,
    rows: Sequence[Example],
    excluded: int,
    chash: str,
    did: _Done,
    got: dict[str, float],
    scores: dict[str, Any],
    *,
    already: int,
    t0: float,
) -> LabelRun:
    """What a model labelling run did, from its workers' counts, the store's labels (`got`) and
    their scores (`_scores`)."""
    failed = sum(i not in got for i in did.failures)  # a failure since labelled by another run is not one
    return LabelRun(
        protocol=cfg.protocol,
        config_hash=chash,
        excluded=excluded,
        total=len(rows),
        already_done=already,
        labelled=did.labelled,
        failed=failed,
        elsewhere=did.elsewhere + len(did.failures) - failed,
        seconds=time.perf_counter() - t0,
        usage=did.usage,
        **scores,
    )


def _scores(
    cfg: LabelConfig, store: LabelStore, rows: Sequence[Example], chash: str, got: dict[str, float]
) -> dict[str, Any]:
    """The selected rows' labels (`got`, the store's p(true)) against gold (`quality`), and with open
    sides the protagonist's choices (`open_sides`): LabelRun's fields. Records are read only for open
    sides (they are large)."""
    scored = [e for e in rows if e.id in got]
    if len(scored) < 2:
        return {}
    p, gold, qids = [got[e.id] for e in scored], [e.label for e in scored], [e.qid for e in scored]
    out: dict[str, Any] = {"quality": label_quality(p, gold, qids)}
    if cfg.graph.chooses_sides:
        records = {r.example_id: r.record for r in store.rows(cfg.protocol, chash)}
        out["open_sides"] = open_sides([records[e.id] for e in scored], p, gold, qids)
    return out


class _Done(BaseModel):
    """What one worker did with its share of the rows."""

    labelled: int = 0
    failures: list[str] = Field(default_factory=list, description="ids of the rows it failed")
    elsewhere: int = Field(0, description="rows another run labelled first")
    usage: dict[str, dict[str, float]] = Field(default_factory=dict)


def _workers(concurrency: int, size: int, rows: int) -> int:
    """A fixed pool of workers pulling chunks of claimed rows: memory and scheduling stay flat in
    the number of rows (no task per row waiting on a semaphore). Batched (`size` > 1), one batch
    more is in flight: a batch waiting on its slowest call would otherwise leave call slots idle
    (each model's max_concurrency still bounds its calls in flight)."""
    return min(-(-concurrency // size) + (size > 1), -(-rows // size))


async def _label_rows(
    cfg: LabelConfig,
    store: LabelStore,
    todo: list[Example],
    chash: str,
    replay: bool,
    on_label: Callable[[LabelRow], None] | None,
    *,
    total: int,
    log: LabelProgress | None = None,
) -> _Done:
    """Label this worker's share of `todo` (rows without a label at the start): each row claimed
    in the store first, its verdict or failure stored the moment it exists."""
    protocol, spec, size = cfg.protocol, cfg.graph, cfg.rows_per_graph
    batched = size > 1
    workers = _workers(cfg.concurrency, size, len(todo))
    by_id = {e.id: e for e in todo}
    claims = Claims(store, (protocol, chash), list(by_id), lease_s=cfg.lease_s, batch=max(1, workers) * size)
    progress = track(f"label {cfg.name} ({protocol})", total, unit="rows", start=total - len(todo))
    did = _Done()
    try:
        models = {role: _model(s, replay) for role, s in spec.specs(cfg.models).items()}

        async def run(chunk: list[Example]) -> list[dict[str, Any]]:
            """Final states of a chunk of rows; a failed row's state holds its "error"."""
            if batched:
                return (await graph.ainvoke({"rows": [spec.start(e) for e in chunk]}))["rows"]
            return [await invoke_recorded(graph, spec.start(chunk[0]))]  # a failure is recorded

        def keep(e: Example, state: dict[str, Any]) -> None:
            """One row's verdict, or its failure, goes to the store (its lease ends with it)."""
            row = label_row(spec, e, state, models, chash)
            written = store.put(row, claims.owner)
            if row.status == "ok":
                did.labelled += 1
            elif written:
                did.failures.append(e.id)
            else:  # another run labelled it meanwhile: a failure never replaces a label
                did.elsewhere += 1
            progress.advance()
            if log is not None:
                log.row(row, e.label, models)
            if on_label is not None:
                on_label(row)

        async def worker() -> None:
            while (ids := await claims.next(size)) is not None:
                chunk = [by_id[i] for i in ids]
                for e, state in zip(chunk, await run(chunk), strict=True):
                    keep(e, state)

        try:
            async with closing_all(models), claims.held():
                graph = spec.build(models, batched=batched)  # `run` calls it
                await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            did.usage = {k: m.usage.as_dict() for k, m in models.items()}
            if log is not None:
                log.flush(models)
        progress.advance(len(claims.elsewhere))
        did.elsewhere += len(claims.elsewhere)
    except BaseException:
        progress.close(failed=True)
        raise
    progress.close()
    return did


async def _queue_for_people(
    cfg: LabelConfig,
    rows: Sequence[Example],
    excluded: int,
    chash: str,
    on_start: Callable[[int, int], None] | None,
    t0: float,
) -> LabelRun:
    """A graph a person judges: store the verdicts that arrived, queue every row not queued yet
    (its speakers speak now; each row waits as its own thread in the store's file), and count
    what still waits. Run again to collect later verdicts."""
    store = LabelStore(cfg.store)
    before = store.done(cfg.protocol, chash)
    store.close()
    if on_start is not None:
        on_start(len(rows), len(rows) - len(before))
    collected = await human.collect(cfg.store, chash)
    # The thread's config is all a later process (`w2sg web`, `w2sg human answer`) has: its
    # models go in as inline specs.
    spec = cfg.graph.with_specs(cfg.models)
    usage: dict[str, dict[str, float]] = {}
    await human.queue_rows(
        cfg.store, spec, rows, config_hash=chash, rules=cfg.human, concurrency=cfg.concurrency, usage=usage
    )
    waiting = len(await human.pending(cfg.store, chash))
    store = LabelStore(cfg.store)
    scores = _scores(cfg, store, rows, chash, store.p_true(cfg.protocol, chash))
    store.close()
    return LabelRun(
        protocol=cfg.protocol,
        config_hash=chash,
        excluded=excluded,
        total=len(rows),
        already_done=len(before),
        labelled=collected,
        failed=0,
        seconds=time.perf_counter() - t0,
        usage=usage,
        pending=waiting,
        **scores,
    )
