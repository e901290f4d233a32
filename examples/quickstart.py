"""Quickstart of the Python API (docs/python-api.md): load SciQ, label the student's questions with
an oversight graph, train a strong student on those labels beside one on a weak teacher's, compare.

    .venv/bin/python examples/quickstart.py --data ../shared/data/sciq            # a few minutes, CPU
    .venv/bin/python examples/quickstart.py --data DIR --weak embedded/tiny-gpt2 \\
        --strong embedded/tiny-gpt2 --questions 20                               # seconds (the tests)

Everything lands where the CLI puts it (under --out): the label store, which `w2sg export` reads,
and the run folder (results.md, results.json, predictions.npz), which `w2sg train` reuses.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from oversight import api
from w2sg.experiment import W2SGConfig


def experiment(args: argparse.Namespace) -> W2SGConfig:
    """A small W2SG experiment on the SciQ files in `args.data`: a weak teacher learns from gold of
    `questions` questions, the student from labels on as many others."""
    n = args.questions
    fast = {"lr": 1.0e-3, "epochs": args.epochs, "batch_size": 32, "eval_every": 10, "device": "cpu"}
    return api.load_config(
        {
            "name": "quickstart",
            "dataset": {"name": "sciq", "path": args.data},
            "sizes": {"weak": n, "strong": n, "val": max(4, n // 4), "test": n},
            "weak": {"kind": "features", "path": args.weak, "pooling": "mean", "max_length": 64},
            "weak_train": fast,
            "strong": {"kind": "features", "path": args.strong, "pooling": "last", "max_length": 96},
            "strong_train": fast,
            "n_boot": 200,
            "out_dir": args.out / "runs",
            "cache_dir": args.out / "cache",
        },
        W2SGConfig,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the SciQ folder (../shared/data/sciq)")
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="store and run folder")
    parser.add_argument("--judge", default="scripted/judge", help="the blind judge: any model string")
    parser.add_argument("--weak", default="embedded/minilm", help="the weak teacher's model")
    parser.add_argument("--strong", default="embedded/smollm2", help="the strong student's model")
    parser.add_argument("--questions", type=int, default=100, help="questions per split")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)

    # 1. Data: rows are (question, candidate answer) pairs with gold and recorded labels.
    train = api.load_dataset({"name": "sciq", "path": args.data}, split="train")
    print(f"SciQ train: {len(train)} rows; first: {train[0].question!r} → {train[0].answer!r}")

    # 2. The experiment, and the rows its student learns from (strong; val and dev select and score).
    cfg = experiment(args)
    splits = api.w2sg_splits(cfg)
    rows = [e for k in ("strong", "val", "dev") for e in splits.get(k, [])]

    # 3. Label them with an oversight graph: a blind judge (no debaters; it sees the question and
    #    answer alone). The labels go to a durable store; a rerun labels only what is missing.
    graph = {"kind": "debate", "protocol": "blind", "judge": args.judge}
    labels = api.label(graph, rows, store=args.out / "labels.sqlite", name="quickstart")
    quality = labels.run.quality
    print(f"{len(labels)} labels from the blind judge; accuracy {quality.accuracy if quality else '-'}")

    # 4. Train a student per label source (the weak teacher's, the judge's) and compare.
    result = api.train_w2sg(cfg, labels={"blind": labels})
    print(f"ceiling {result.ceiling} (95% CI); run folder {cfg.out_dir / result.run_id}")
    floors = {s.source: s for s in result.sources}
    print(f"{'source':8} {'loss':6} {'labels':>6} {'student':>7} {'PGR':>7}")
    for s in result.students:
        pgr = "-" if s.pgr is None else f"{s.pgr.value:.3f}"
        acc = floors[s.source].labels.accuracy
        print(f"{s.source:8} {s.loss:6} {acc.value:6.3f} {s.accuracy.value:7.3f} {pgr:>7}")


if __name__ == "__main__":
    main()
