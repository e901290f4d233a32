"""Soak of `w2sg label` (issue 27): 100,000 rows through real `w2sg label` processes against the
local OpenAI-compatible server, clean, then with 20 % of requests faulty (429, 500, timeouts,
malformed and empty bodies), two workers sharing one store, one of them SIGKILLed mid-way and
started again. Checked: every row in the store exactly once, no lease left, labels identical to
the clean run's (p(true) bit for bit), and the two workers made about the requests of one run.
Printed: rows/s of each run and peak RSS of a clean run at 10,000 and 100,000 rows (each its own
process), against the clean run in the same process tree as the baseline. Exit status 1 when a
check fails; nothing is timed against a goal.

    python benchmarks/bench_soak.py            # 100,000 rows (RSS also at 10,000); ~15 min on 2 cores
    python benchmarks/bench_soak.py --quick    # 2,000 rows (RSS also at 400); seconds
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FAULTS = ["429", "500", "timeout", "malformed", "empty"]
TIMEOUT_S = 1.0  # client timeout; an injected `timeout` holds its reply twice as long


def write_data(folder: Path, rows: int) -> Path:
    """A SciQ-format split of rows / 2 distinct questions (two rows each: the answer and one
    distractor), in `folder/test.jsonl`."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "test.jsonl").open("w") as f:
        for k in range(rows // 2):
            record = {
                "question": f"Soak question {k}: which value does item {k * 7919 % 100003} take?",
                "correct_answer": f"value {k % 97}",
                "distractor1": f"value {(k + 1) % 97} b",
                "distractor2": f"value {(k + 2) % 97} c",
                "distractor3": f"value {(k + 3) % 97} d",
                "support": "",
            }
            f.write(json.dumps(record) + "\n")
    return folder


def write_config(path: Path, url: str, data: Path, store: Path) -> Path:
    """A blind-judge labelling of every row of `data` by the server at `url`."""
    judge = {
        "name": "openai/fake",
        "openai": {"base_urls": [url], "timeout_s": TIMEOUT_S, "timeout_per_token_s": 0},
        "max_concurrency": 64,
        # The injected faults are random, not overload: backing off would only slow the soak.
        "adaptive_concurrency": False,
        "retry": {"max_attempts": 12, "initial_s": 0.01, "max_wait_s": 0.1},
    }
    cfg = {
        "dataset": {"path": str(data)},
        "split": "test",
        "concurrency": 64,
        "rows_per_graph": 16,
        "lease_s": 30,
        "store": str(store),
        "models": {"judge": judge},
        "graph": {"kind": "debate", "protocol": "blind", "judge": "judge"},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def start(cfg: Path) -> subprocess.Popen[bytes]:
    """`w2sg label CFG` in its own process; its output goes to CFG.log (a pipe nobody reads while
    it runs would fill up with its retry warnings and stall it)."""
    env = {**os.environ, "W2SG_PROGRESS": "off"}
    cmd = [sys.executable, "-m", "oversight.cli", "label", str(cfg)]
    with cfg.with_suffix(".log").open("ab") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for `proc`: its exit status and peak RSS in MiB (`wait4`: this child's own)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024  # KiB on Linux


def run(cfg: Path) -> dict[str, float]:
    """One clean `w2sg label` process: rows/s (wall time of the whole process) and peak RSS."""
    t0 = time.perf_counter()
    proc = start(cfg)
    code, rss = finish(proc)
    if code != 0:
        raise SystemExit(f"w2sg label {cfg} failed ({code}): {cfg.with_suffix('.log').read_text()[-2000:]}")
    return {"seconds": time.perf_counter() - t0, "rss_mib": rss}


def load_child(cfg: Path) -> None:
    """Runs in a fresh process: the imports of `w2sg label` and its selection of rows (read,
    fingerprinted), nothing labelled; prints the peak RSS in MiB."""
    import resource

    import oversight.cli.label  # noqa: F401 -- the command's own imports
    from agents import load_config
    from agents.backends import openai_compat  # noqa: F401 -- what the model loads
    from oversight.labelling.label import LabelConfig, selection

    rows, _, _ = selection(load_config(cfg, LabelConfig))
    print(
        json.dumps({"rows": len(rows), "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    )


def load_rss(cfg: Path) -> float:
    """Peak RSS of loading `cfg`'s rows alone: the part of a run's peak that is its input."""
    out = subprocess.run([sys.executable, __file__, "--load-child", str(cfg)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return float(json.loads(out.stdout.strip().splitlines()[-1])["rss_mib"])


def stored(store: Path) -> tuple[int, dict[str, tuple[str, float | None]], int]:
    """Rows in the store, each example's (status, p_true), and leases left."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        n = db.execute("SELECT count(*) FROM labels").fetchone()[0]
        got = {r[0]: (r[1], r[2]) for r in db.execute("SELECT example_id, status, p_true FROM labels")}
        leases = db.execute("SELECT count(*) FROM leases").fetchone()[0]
    return n, got, leases


def count(store: Path) -> int:
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30) as db:
            return int(db.execute("SELECT count(*) FROM labels").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def faulty(cfg: Path, store: Path, rows: int, kill_at: float) -> dict[str, Any]:
    """Two workers on one store; worker A is SIGKILLed once `kill_at` of the rows are in, then
    started again; returns the wall time until every worker is done, and their exit statuses."""
    t0 = time.perf_counter()
    a, b = start(cfg), start(cfg)
    while count(store) < kill_at * rows and a.poll() is None:
        time.sleep(0.2)
    killed_at = count(store)
    a.send_signal(signal.SIGKILL)
    finish(a)
    again = start(cfg)
    codes = [finish(again)[0], finish(b)[0]]
    return {"seconds": time.perf_counter() - t0, "codes": codes, "killed_at": killed_at}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2,000 rows (RSS also at 400), for the test suite")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=10_000, help="rows of the second RSS measure")
    ap.add_argument("--load-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load_child:
        load_child(args.load_child)
        return
    rows, small = (2_000, 400) if args.quick else (args.rows, args.small)
    from agents.testing import FakeServer

    with tempfile.TemporaryDirectory() as tmp, FakeServer() as server:
        t = Path(tmp)
        big, little = write_data(t / "big", rows), write_data(t / "small", small)
        small_cfg = write_config(t / "small.yaml", server.url, little, t / "small.sqlite")
        clean_cfg = write_config(t / "clean.yaml", server.url, big, t / "clean.sqlite")
        loading = load_rss(small_cfg), load_rss(clean_cfg)
        r_small = run(small_cfg)
        server.reset()
        r_clean = run(clean_cfg)
        clean_requests = server.stats()["requests"]
        server.reset(fault_rate=0.2, fault_kinds=FAULTS, seed=27, timeout_sleep_s=2 * TIMEOUT_S)
        f = faulty(
            write_config(t / "soak.yaml", server.url, big, t / "soak.sqlite"), t / "soak.sqlite", rows, 0.3
        )
        stats = server.stats()
        n_clean, clean, _ = stored(t / "clean.sqlite")
        n, got, leases = stored(t / "soak.sqlite")
    requests = stats["requests"] - sum(stats["injected"].values())  # answered: each fault is retried
    checks = {
        "every row exactly once": n == len(got) == rows == n_clean,
        "no lease left": leases == 0,
        "identical to the clean run": got == clean,
        "workers exited 0": f["codes"] == [0, 0],
    }
    print(f"soak: {rows} rows, blind judge, 64 in flight, rows_per_graph 16, local server")
    print(f"  clean, 1 worker:  {rows / r_clean['seconds']:.0f} rows/s ({r_clean['seconds']:.0f} s)")
    injected = sum(stats["injected"].values())
    print(f"  20 % faults, 2 workers, 1 SIGKILL at {f['killed_at']} rows + restart: ", end="")
    print(f"{rows / f['seconds']:.0f} rows/s ({f['seconds']:.0f} s)")
    print(f"    {stats['requests']} requests, {injected} faults injected: {stats['injected']}")
    print(f"  answered requests per row: clean {clean_requests / rows:.3f}, soak {requests / rows:.3f}")
    print(f"  peak RSS: {small} rows {r_small['rss_mib']:.0f} MiB, {rows} rows {r_clean['rss_mib']:.0f} MiB")
    print(f"  growth = {r_clean['rss_mib'] - r_small['rss_mib']:.0f} MiB for {rows / small:.0f}x the rows")
    print(
        f"    loading the rows alone (imports, read, fingerprint): {loading[0]:.0f} MiB, {loading[1]:.0f} MiB"
    )
    on_top = r_small["rss_mib"] - loading[0], r_clean["rss_mib"] - loading[1]
    print(f"    labelling on top of its input: {on_top[0]:.0f} MiB, {on_top[1]:.0f} MiB")
    for name, ok in checks.items():
        print(f"  {name}: {'yes' if ok else 'NO'}")
    if not all(checks.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
