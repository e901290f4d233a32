"""Labelling pipeline overhead and memory, against baselines measured in the same run.

(a) labels/s of a blind-judge labelling run (`oversight.labelling.label`: graph, durable SQLite store, a
    progress bar) vs a bare loop of the same `choice_probs` calls on the same model at the same
    concurrency, against the local OpenAI-compatible server with a fixed latency (reading the data is
    outside all timings). Goal ≥ 0.9×: graphs, store and progress cost under 10 %. Ours runs twice:
    with `rows_per_graph` 16 (the goal's figure) and 1 (one graph run per row, ~1 ms of client CPU
    each: with client and server on 2 cores the client is the bottleneck).
(b) peak RSS of labelling about 1,000 and all 9,979 SciQ train rows, each in a fresh process:
    memory stays flat.

    python benchmarks/bench_pipeline.py           # 2,000 rows, 64 in flight, 200 ms; RSS at 1k / 10k
    python benchmarks/bench_pipeline.py --quick   # 200 rows, 20 ms; RSS at ~100 / ~400 rows (seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import interleaved_medians

from agents import ModelSpec, get_model
from agents.backends.classifier import PAIR_SEP
from graphs.debate import DebateConfig, judge_prompt
from oversight.labelling.label import LabelConfig, label, select_rows

ROWS_PER_GRAPH = 16


def label_config(
    url: str, store: Path, questions: int | None, concurrency: int, rows_per_graph: int = 1
) -> LabelConfig:
    return LabelConfig(
        split="train",  # 9,979 rows (repeats resolved); the blind judge needs no support passage
        questions=questions,
        concurrency=concurrency,
        rows_per_graph=rows_per_graph,
        store=store,
        models={"judge": ModelSpec(name=f"openai/fake@{url}", max_concurrency=concurrency)},
        graph=DebateConfig(protocol="blind", judge="judge"),
    )


def ours(url: str, questions: int, concurrency: int, rows_per_graph: int) -> float:
    from rich.console import Console
    from rich.progress import Progress

    with tempfile.TemporaryDirectory() as tmp:
        cfg = label_config(url, Path(tmp) / "labels.sqlite", questions, concurrency, rows_per_graph)
        rows, _ = select_rows(cfg)  # reading the data is outside both timings
        with Progress(console=Console(file=io.StringIO())) as bar:  # the CLI's bar, drawn to nowhere
            task = bar.add_task("labels", total=None)
            t0 = time.perf_counter()
            run = asyncio.run(
                label(
                    cfg,
                    rows=rows,
                    on_start=lambda total, todo: bar.update(task, total=total),
                    on_label=lambda row: bar.update(task, advance=1),
                )
            )
            rate = run.labelled / (time.perf_counter() - t0)
        assert run.failed == 0, run
    return rate


def bare(url: str, questions: int, concurrency: int) -> float:
    cfg = label_config(url, Path("unused.sqlite"), questions, concurrency)
    rows, _ = select_rows(cfg)
    assert isinstance(cfg.graph, DebateConfig)
    prompts = [
        judge_prompt(
            cfg.graph,
            {"question": e.question, "answer": e.answer},
            ("correct", "incorrect"),
            pair_sep=PAIR_SEP,
        )
        for e in rows
    ]

    async def go() -> float:
        model = get_model(cfg.models["judge"])
        gate = asyncio.Semaphore(concurrency)

        async def one(p: str) -> None:
            async with gate:
                await model.choice_probs([{"role": "user", "content": p}], ["Yes", "No"])

        t0 = time.perf_counter()
        await asyncio.gather(*(one(p) for p in prompts))
        rate = len(prompts) / (time.perf_counter() - t0)
        await model.aclose()
        return rate

    return asyncio.run(go())


def rss_child(url: str, questions: int | None) -> None:
    """Runs in a fresh process: label, then print the peak RSS in MiB."""
    with tempfile.TemporaryDirectory() as tmp:
        run = asyncio.run(label(label_config(url, Path(tmp) / "l.sqlite", questions, 64, ROWS_PER_GRAPH)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"rows": run.total, "peak_rss_mib": peak}))


def rss(url: str, questions: int | None) -> dict[str, float]:
    args = [sys.executable, __file__, "--rss-child", url, str(questions or 0)]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for the test suite")
    ap.add_argument("--rss-child", nargs=2, metavar=("URL", "QUESTIONS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child[0], int(args.rss_child[1]) or None)
        return
    from agents.testing import FakeServer

    questions, latency, concurrency, rounds = (100, 0.02, 16, 1) if args.quick else (1000, 0.2, 64, 3)
    small, large = (50, 200) if args.quick else (500, None)  # None: all 9,979 rows
    with FakeServer(latency_s=latency) as server:
        url = server.url
        b, o, o1 = interleaved_medians(
            rounds,
            lambda: bare(url, questions, concurrency),
            lambda: ours(url, questions, concurrency, ROWS_PER_GRAPH),
            lambda: ours(url, questions, concurrency, 1),
        )
        r1, r2 = rss(url, small), rss(url, large)
    ms = latency * 1000
    print(f"(a) blind-judge labels, {2 * questions} rows, {concurrency} in flight, {ms:.0f} ms latency")
    print(f"    bare choice_probs loop {b:.0f} labels/s   ours (graph + store + progress) {o:.0f} labels/s")
    print(f"    ratio ours/bare = {o / b:.2f}x  (goal >= 0.9x; rows_per_graph {ROWS_PER_GRAPH})")
    ideal = concurrency / latency
    print(f"    one graph run per row: {o1:.0f} labels/s = {o1 / b:.2f}x  (ideal {ideal:.0f}/s)")
    m1, m2 = r1["peak_rss_mib"], r2["peak_rss_mib"]
    print(f"(b) peak RSS: {r1['rows']:.0f} rows {m1:.0f} MiB, {r2['rows']:.0f} rows {m2:.0f} MiB")
    print(f"    growth = {m2 - m1:.0f} MiB for {r2['rows'] / r1['rows']:.0f}x the rows")


if __name__ == "__main__":
    main()
