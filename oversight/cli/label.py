"""`w2sg label | export`: labelling runs and their store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from oversight.cli.app import SetOpt, TrackOpt, app, console, load, with_tracking
from oversight.labelling import shards

if TYPE_CHECKING:
    from oversight.labelling.label import LabelConfig, LabelRun
    from oversight.labelling.store import LabelRow


@app.command("label", rich_help_panel="Labelling")
def label_cmd(
    config: Annotated[Path, typer.Argument(help="labelling YAML (see configs/label-*.yaml)")],
    replay: Annotated[bool, typer.Option(help="rebuild every label from the models' record caches")] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            help="label only shard i/n (1-based) of the rows into its own store beside `store`, e.g. "
            "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT; then --merge"
        ),
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="join the shard stores of --shard runs into `store`")
    ] = False,
    set_: SetOpt = None,
    track: TrackOpt = None,
) -> None:
    """Run an oversight graph over a dataset split; verdicts go to a durable SQLite store.

    Runs sharing a store split its rows between them; across machines, run shards (--shard i/n,
    each into its own store) and join them with --merge. --track: labelling progress and label
    quality in TensorBoard / wandb (docs/tracking.md)."""
    from oversight.labelling.label import LabelConfig

    cfg = load(config, LabelConfig, overrides=with_tracking(set_, track))
    if merge:
        if shard is not None or replay:
            raise ValueError("--merge joins the shard stores: give it without --shard and --replay")
        _merge(cfg)
        return
    run = _label_with_bar(cfg, replay, shard)
    _print_run(cfg, run, shards.store_path(cfg.store, shard) if shard else cfg.store)
    if shard is not None:
        console.print(f"when every shard is done: w2sg label {config} --merge", highlight=False)
    if run.failed:
        raise typer.Exit(1)


def _label_with_bar(cfg: LabelConfig, replay: bool, shard: str | None) -> LabelRun:
    """`label` with a progress bar: rows done of all, failures so far, the last label's tokens."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from oversight.labelling.label import label

    failed = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
    ) as bar:
        task = bar.add_task(f"{cfg.protocol} labels", total=None, note="")

        def started(total: int, todo: int) -> None:
            bar.update(task, total=total, completed=total - todo, note=f"{total - todo} already in the store")

        def labelled(row: LabelRow) -> None:
            nonlocal failed
            failed += row.status == "failed"
            tokens = row.record.get("verdict", {}).get("tokens", 0)
            bar.update(task, advance=1, note=f"{failed} failed · last {tokens} tokens")

        return asyncio.run(label(cfg, replay=replay, shard=shard, on_start=started, on_label=labelled))


def _print_run(cfg: LabelConfig, run: LabelRun, store: Path) -> None:
    """What a labelling run did: counts, cost, store, people waiting, calls per role, label quality."""
    from oversight.labelling.label import usage_lines

    cost, tokens = run.cost_usd, run.tokens
    console.print(
        f"{run.labelled} labelled, {run.failed} failed, {run.already_done} already done, of {run.total}"
        + (f" ({run.excluded} rows left out: their questions trained the judge)" if run.excluded else "")
        + (f", {run.elsewhere} by another run sharing the store" if run.elsewhere else "")
        + "; "
        f"{run.seconds:.1f} s, {tokens:.0f} tokens, ${cost:.4f}; store {store} "
        f"(protocol {run.protocol}, config {run.config_hash})",
        highlight=False,
        soft_wrap=True,
    )
    if run.pending:
        console.print(
            f"{run.pending} waiting for a person: judge them with `w2sg web {cfg.store} --judge NAME` or "
            f"`w2sg human answer {cfg.store}`, then rerun this command to collect the verdicts",
            highlight=False,
            soft_wrap=True,
        )
    for line in usage_lines(run.usage):
        console.print(f"  {line}", highlight=False, soft_wrap=True)
    if run.quality is not None:
        q = run.quality
        console.print(
            f"label accuracy {q.accuracy} (95% CI), ECE {q.ece:.3f}, Brier {q.brier:.3f} against gold",
            highlight=False,
        )
    for line in run.open_sides.lines() if run.open_sides is not None else []:
        console.print(line, highlight=False, soft_wrap=True)


def _merge(cfg: LabelConfig) -> None:
    """`w2sg label --merge`: exit status 1 while a shard or a row is missing, or a row failed."""
    from oversight.labelling.merge import merge

    m = merge(cfg)
    missing = f"; shards not run yet: {', '.join(map(str, m.missing_shards))}" if m.missing_shards else ""
    console.print(
        f"merged {len(m.merged)} of {m.shards} shard stores into {m.store}: {m.ok} labelled, {m.failed} "
        f"failed, {len(m.missing)} missing, of {m.total}{missing}",
        highlight=False,
        soft_wrap=True,
    )
    if m.missing_shards or m.missing or m.failed:
        raise typer.Exit(1)


@app.command("export", rich_help_panel="Labelling")
def export_cmd(
    store: Annotated[Path, typer.Argument(help="a labelling store (SQLite)")],
    out: Annotated[Path, typer.Option(help="output file (jsonl, csv, parquet) or folder (hf, inspect)")],
    fmt: Annotated[
        str, typer.Option("--format", help="jsonl, csv, parquet, hf, or inspect (inspect_ai eval logs)")
    ] = "jsonl",
    protocol: Annotated[str | None, typer.Option(help="only this protocol")] = None,
    config_hash: Annotated[str | None, typer.Option(help="only this config hash")] = None,
    force: Annotated[
        bool, typer.Option(help="replace an existing --out of the same kind (a file, or a folder)")
    ] = False,
) -> None:
    """Export labels with provenance (protocol, models, seed, config hash, transcript, tokens, seconds)
    and where each row came from (source_id, source columns). `--format inspect` writes one
    inspect_ai eval log per protocol and config hash, for `inspect view --log-dir OUT`.

    An existing --out is kept unless --force; a folder where a file goes (or the reverse) is never
    replaced. The output appears only once complete; no temporary file is left behind."""
    from oversight.labelling.export import check_target, export_rows, write_export

    if not store.is_file():
        raise FileNotFoundError(f"{store}: no such store")
    if out.resolve() == store.resolve():
        raise ValueError(f"--out {out} is the store being exported; choose another path")
    check_target(out, fmt, force=force)  # before reading the store: refuse at once
    rows = export_rows(store, protocol, config_hash)
    path = write_export(rows, out, fmt, force=force)
    console.print(f"wrote {len(rows)} labels to {path}", highlight=False)


@app.command("web", rich_help_panel="Labelling")
def web_cmd(
    source: Annotated[Path, typer.Argument(help="a label store (SQLite), or a `w2sg run` folder")],
    judge: Annotated[
        list[str] | None, typer.Option(help="a judge's id; repeat for several; each gets their own link")
    ] = None,
    host: Annotated[
        str, typer.Option(help="address to bind; anything but loopback needs the token")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    timeout: Annotated[
        float, typer.Option(help="seconds after which an untouched assignment returns to the queue")
    ] = 900.0,
) -> None:
    """Human judging in the browser (each judge's queue and judging page) and a transcript viewer.

    Judges' links carry their own keys (kept in the store's file: they survive a restart). Bound to
    anything but loopback, the viewer needs a token, generated now and printed once."""
    import secrets

    import uvicorn

    from oversight.labelling import sqlite
    from oversight.web import queue
    from oversight.web.app import LOOPBACK, create_app, host_names
    from oversight.web.viewer import store_path

    store = store_path(source)
    sqlite.read(store, lambda db: sqlite.check_store(db, store))  # before serving: refuse any other file
    token = None if host in LOOPBACK else secrets.token_urlsafe(24)
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    console.print(f"viewer: {base}/" + (f"?token={token}" if token else ""), highlight=False, soft_wrap=True)
    for name in judge or []:
        console.print(
            f"judge {name}: {base}/j/{queue.judge_key(store, name)}", highlight=False, soft_wrap=True
        )
    # No access log: judges' links carry their keys, and the token is printed above only.
    server = create_app(store, token=token, timeout_s=timeout, hosts=host_names(host))
    uvicorn.run(server, host=host, port=port, access_log=False, log_level="warning")
