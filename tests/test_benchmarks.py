"""The benchmark scripts run and print their ratios (quick mode; the goals are checked by hand)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_quick(script: str) -> str:
    out = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_bench_backends_quick() -> None:
    stdout = run_quick("bench_backends.py")
    ratios = [float(x) for x in re.findall(r"ratio .*? = ([0-9.]+)x", stdout)]
    assert len(ratios) == 2 and all(r > 0 for r in ratios), stdout


def test_bench_train_quick() -> None:
    stdout = run_quick("bench_train.py")
    assert re.search(r"ratio ours/bare step time = [0-9.]+x", stdout), stdout
    speedup = float(re.search(r"speed-up = ([0-9.]+)x", stdout).group(1))  # type: ignore[union-attr]
    assert speedup > 1, "loading cached features should beat computing them"
    ratios = re.findall(r"(fp32|bf16): ratio LoRA / full fine-tune = ([0-9.]+)x", stdout)
    assert {p for p, _ in ratios} == {"fp32", "bf16"} and all(float(r) > 0 for _, r in ratios), stdout
    ms = {
        (way.strip(), precision): float(t)
        for way, precision, t in re.findall(
            r"^\s+(feature head|LoRA r=8|full fine-tune)\s+(fp32|bf16):\s+([0-9.]+) ms/step", stdout, re.M
        )
    }
    assert len(ms) == 6, stdout
    for precision in ("fp32", "bf16"):
        head = ms[("feature head", precision)]
        assert head < ms[("LoRA r=8", precision)], (
            "a backbone step cannot be cheaper than a head on cached features"
        )


def test_bench_ensemble_quick() -> None:
    stdout = run_quick("bench_ensemble.py")
    rows = re.findall(r"^(bagging|boosting)\s+(\d+)\s+[0-9.]+\s+[0-9.]+\s+([0-9.]+)$", stdout, re.M)
    assert {(m, n) for m, n, _ in rows} == {(m, n) for m in ("bagging", "boosting") for n in ("1", "2", "4")}
    assert all(float(r) > 0 for _, _, r in rows), stdout


def test_bench_debate_quick() -> None:
    stdout = run_quick("bench_debate.py")
    rates = [float(x) for x in re.findall(r"([0-9.]+) questions/s", stdout)]
    assert len(rates) == 3 and all(r > 0 for r in rates), stdout
    ratios = re.findall(r"ratio batched[^=]*= ([0-9.]+)x", stdout)
    assert len(ratios) == 3 and all(float(r) > 0 for r in ratios), stdout
    shares = [int(x) for x in re.findall(r"(\d+)% from the cache", stdout)]
    assert shares[:2] == [0, 0] and shares[2] > 0, "only the cache-on run reuses prefixes"


def test_bench_pipeline_quick() -> None:
    stdout = run_quick("bench_pipeline.py")
    assert re.search(r"ratio ours/bare = [0-9.]+x", stdout), stdout
    assert re.search(r"peak RSS: \d+ rows \d+ MiB, \d+ rows \d+ MiB", stdout), stdout


def test_bench_bestofn_quick() -> None:
    stdout = run_quick("bench_bestofn.py")
    rates = [float(x) for x in re.findall(r"([0-9.]+) debates/s", stdout)]
    assert len(rates) == 2 and all(r > 0 for r in rates), stdout
    assert re.search(r"ratio in flight/sequential = [0-9.]+x", stdout), stdout


@pytest.mark.slow  # ~1 min: five `w2sg label` processes
def test_bench_soak_quick() -> None:
    """The soak on 2,000 rows: 20 % faults, two workers, one SIGKILL and restart."""
    stdout = run_quick("bench_soak.py")
    checks = ("every row exactly once", "no lease left", "identical to the clean run", "workers exited 0")
    assert all(f"{check}: yes" in stdout for check in checks), stdout
    assert re.search(r"peak RSS: \d+ rows \d+ MiB, \d+ rows \d+ MiB", stdout), stdout
    assert re.search(r"clean, 1 worker: +\d+ rows/s", stdout), stdout
