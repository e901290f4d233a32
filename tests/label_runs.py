"""Shared by the labelling tests: read a store's labels, and SIGKILL a real `w2sg label` mid-way."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from oversight.labelling.store import LabelStore

ROOT = Path(__file__).resolve().parents[1]


def labels(path: Path) -> dict[str, tuple[float | None, list[str]]]:
    """example id → (p_true, transcript texts) of the store's one labelling (None: a failed row)."""
    store = LabelStore(path)
    ((protocol, chash),) = store.db.execute("SELECT DISTINCT protocol, config_hash FROM labels").fetchall()
    out = {
        r.example_id: (r.p_true, [t["text"] for t in r.record.get("transcript", [])])
        for r in store.rows(protocol, chash)
    }
    store.close()
    return out


def count_labels(store: Path) -> int:
    """Rows committed so far; 0 while the writer has not created the table yet."""
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        try:
            return int(db.execute("SELECT count(*) FROM labels").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def sigkill_midway(config: Path, store: Path, *, after: int, timeout_s: float = 120.0) -> int:
    """Run `w2sg label CONFIG` in a subprocess and SIGKILL it once at least `after` rows are in
    `store` (no chance to clean up, as in a crash); returns how many rows the store then holds."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "oversight.cli", "label", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + timeout_s
    while time.time() < deadline and count_labels(store) < after and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # a no-op if it already exited (then the caller's count says so)
    proc.wait()
    return count_labels(store)
