"""The benchmark scripts run and print their ratios (quick mode; the goals are checked by hand)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_backends_quick() -> None:
    out = subprocess.run(
        [sys.executable, "benchmarks/bench_backends.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    ratios = [float(x) for x in re.findall(r"ratio .*? = ([0-9.]+)x", out.stdout)]
    assert len(ratios) == 2 and all(r > 0 for r in ratios), out.stdout
