"""Who judges what: judges' keys and the assignment of waiting items to judges, in tables of the
store's own SQLite file (next to the threads and the labels), so a restarted server keeps both.

An item is assigned to one judge at a time; an assignment nobody has looked at for `timeout_s`
(an abandoned tab, a judge gone home) returns to the queue. Claims run in one `BEGIN IMMEDIATE`
transaction, so two judges asking at once never get the same item.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from oversight.labelling import sqlite

TABLES = (
    "CREATE TABLE IF NOT EXISTS web_judges (judge TEXT PRIMARY KEY, key TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS web_assignments (thread_id TEXT PRIMARY KEY, judge TEXT NOT NULL, "
    "since REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS web_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def connect(db: Path) -> sqlite3.Connection:
    return sqlite.connect(db, TABLES)


def judge_key(db: Path, judge: str) -> str:
    """The judge's key (made once, kept in the file: their link survives a restart)."""
    if not judge or not all(c.isalnum() or c in "-_." for c in judge):
        raise ValueError(f"--judge {judge!r}: use letters, digits, '-', '_' or '.'")
    con = connect(db)
    try:
        con.execute("INSERT OR IGNORE INTO web_judges VALUES (?, ?)", (judge, secrets.token_urlsafe(18)))
        return con.execute("SELECT key FROM web_judges WHERE judge = ?", (judge,)).fetchone()[0]
    finally:
        con.close()


def judge_for(db: Path, key: str) -> str | None:
    con = connect(db)
    try:
        row = con.execute("SELECT judge FROM web_judges WHERE key = ?", (key,)).fetchone()
    finally:
        con.close()
    return row[0] if row is not None else None


def csrf_token(db: Path, key: str) -> str:
    """A judge's CSRF token: an HMAC of their key under a secret kept in the file."""
    con = connect(db)
    try:
        con.execute("INSERT OR IGNORE INTO web_meta VALUES ('csrf', ?)", (secrets.token_hex(32),))
        secret = con.execute("SELECT value FROM web_meta WHERE name = 'csrf'").fetchone()[0]
    finally:
        con.close()
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def claim(db: Path, judge: str, waiting: Sequence[str], timeout_s: float) -> str | None:
    """The item `judge` works on: the one they hold (its clock restarts), else the oldest waiting
    item nobody else holds; None when there is none."""
    now = time.time()
    con = connect(db)
    try:
        con.execute("BEGIN IMMEDIATE")
        held = {t: (j, s) for t, j, s in con.execute("SELECT thread_id, judge, since FROM web_assignments")}
        mine = [t for t, (j, s) in held.items() if j == judge and t in waiting and now - s < timeout_s]
        taken = {t for t, (j, s) in held.items() if j != judge and now - s < timeout_s}
        pick = mine[0] if mine else next((t for t in waiting if t not in taken), None)
        con.execute("DELETE FROM web_assignments WHERE judge = ?", (judge,))
        if pick is not None:
            con.execute("INSERT OR REPLACE INTO web_assignments VALUES (?, ?, ?)", (pick, judge, now))
        con.execute("COMMIT")
        return pick
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def holder(db: Path, thread_id: str, timeout_s: float) -> str | None:
    """Who holds `thread_id` now (None: nobody, or the assignment timed out)."""
    con = connect(db)
    try:
        row = con.execute(
            "SELECT judge, since FROM web_assignments WHERE thread_id = ?", (thread_id,)
        ).fetchone()
    finally:
        con.close()
    return row[0] if row is not None and time.time() - row[1] < timeout_s else None


def release(db: Path, thread_id: str) -> None:
    con = connect(db)
    try:
        con.execute("DELETE FROM web_assignments WHERE thread_id = ?", (thread_id,))
    finally:
        con.close()
