"""`w2sg web` over HTTP (FastAPI's TestClient, and the real server for its command line): judges'
queues (one judge per item, abandoned items return), CSRF, the token off loopback, escaping,
durability across a restart, and bad submissions refused with the item unchanged."""

from __future__ import annotations

import http.client
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cli import ROOT, w2sg
from fastapi import FastAPI
from fastapi.testclient import TestClient
from test_human_label import human_debate

from oversight.web import queue
from oversight.web.app import create_app, host_names, host_of


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A label store with 4 debates (2 questions) waiting for a human judge."""
    out = w2sg("label", str(human_debate(tmp_path)))
    assert out.returncode == 0 and "4 waiting" in out.stdout, out.stderr
    return tmp_path / "h.sqlite"


def client(app: FastAPI) -> TestClient:
    """A client that names the server as a browser on this machine does (`Host: 127.0.0.1`)."""
    return TestClient(app, base_url="http://127.0.0.1:8000")


def form(html: str) -> dict[str, str]:
    return {
        "thread": re.search(r'name="thread" value="([^"]+)"', html).group(1),  # type: ignore[union-attr]
        "csrf": re.search(r'name="csrf" value="([^"]+)"', html).group(1),  # type: ignore[union-attr]
    }


def labels(store: Path) -> list[tuple[str, float, str]]:
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT example_id, p_true, record FROM labels ORDER BY created").fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def test_two_judges_never_get_the_same_item_and_an_abandoned_one_returns(store: Path) -> None:
    app = client(create_app(store, timeout_s=0.5))
    alice, bob = queue.judge_key(store, "alice"), queue.judge_key(store, "bob")
    assert queue.judge_key(store, "alice") == alice  # kept in the file
    a, b = form(app.get(f"/j/{alice}/next").text), form(app.get(f"/j/{bob}/next").text)
    assert a["thread"] != b["thread"]
    assert form(app.get(f"/j/{alice}/next").text)["thread"] == a["thread"]  # the same item again
    # Bob cannot submit Alice's item.
    stolen = app.post(f"/j/{bob}/verdict", data={**a, "csrf": b["csrf"], "p": "80", "explanation": "x y"})
    assert stolen.status_code == 409 and labels(store) == []
    # Alice walks away; after the timeout her item goes to the next judge who asks.
    time.sleep(0.6)
    carol = queue.judge_key(store, "carol")
    assert form(app.get(f"/j/{carol}/next").text)["thread"] == a["thread"]
    assert app.get("/j/not-a-key").status_code == 404


def test_a_verdict_is_committed_before_the_page_confirms_and_survives_a_restart(store: Path) -> None:
    key = queue.judge_key(store, "alice")
    app = client(create_app(store))
    page = app.get(f"/j/{key}/next").text
    assert "Debater A (argues the answer is correct)" in page
    done = app.post(f"/j/{key}/verdict", data={**form(page), "p": "85", "explanation": "A quotes the text"})
    assert done.status_code == 200 and "p(true) = 0.85" in done.text
    ((_, p, record),) = labels(store)  # already in the file when the page came back
    assert p == 0.85 and '"judge": "alice"' in record and "A quotes the text" in record
    # A new server over the same file: the verdict is there, the other three still wait.
    again = client(create_app(store))
    assert '<span id="waiting">3</span>' in again.get(f"/j/{key}").text
    assert "0.85" in again.get("/").text and "A quotes the text" in again.get("/t/0").text


def test_bad_submissions_are_refused_with_the_reason_and_change_nothing(store: Path) -> None:
    key = queue.judge_key(store, "alice")
    app = client(create_app(store))
    page = app.get(f"/j/{key}/next").text
    f = form(page)
    for p, why, message in [
        ("150", "long enough here", "must be a number in [0, 100]"),
        ("-3", "long enough here", "must be a number in [0, 100]"),
        ("abc", "long enough here", "must be a number in [0, 100]"),
        ("60", "", "at least 2 words is required (got 0)"),
    ]:
        r = app.post(f"/j/{key}/verdict", data={**f, "p": p, "explanation": why})
        assert r.status_code == 400 and "not recorded: " in r.text and message in r.text.replace("&#39;", "'")
        assert form(r.text)["thread"] == f["thread"]  # the same item, still to judge
    assert labels(store) == []
    assert '<span id="waiting">4</span>' in app.get(f"/j/{key}").text
    # No CSRF token, or another judge's: refused before anything is read.
    bob = queue.judge_key(store, "bob")
    for csrf in ("", queue.csrf_token(store, bob)):
        r = app.post(f"/j/{key}/verdict", data={**f, "csrf": csrf, "p": "60", "explanation": "two words"})
        assert r.status_code == 403 and "CSRF" in r.text
    assert labels(store) == []


def test_any_text_for_p_is_refused_without_a_server_error(store: Path) -> None:
    """`"²".isdigit()` is true but `float("²")` raises: this was a 500."""
    key = queue.judge_key(store, "alice")
    app = client(create_app(store))
    f = form(app.get(f"/j/{key}/next").text)
    for p in ("²", "¹⁰", "nan", "1e999", "50%"):
        r = app.post(f"/j/{key}/verdict", data={**f, "p": p, "explanation": "long enough here"})
        assert r.status_code == 400 and "must be a number in [0, 100]" in r.text.replace("&#39;", "'"), p
        assert form(r.text)["thread"] == f["thread"] and 'value="50"' in r.text
    assert labels(store) == []


def test_only_the_bound_host_names_are_answered(store: Path) -> None:
    """A DNS-rebinding page (its own name resolving to 127.0.0.1) sends its own Host: refused."""
    key = queue.judge_key(store, "alice")
    app = client(create_app(store))
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.nip.io:8000", ""):
        assert app.get("/", headers={"Host": host}).status_code == 400, host
        assert app.get(f"/j/{key}/next", headers={"Host": host}).status_code == 400, host
    for host in ("127.0.0.1:8000", "localhost:8000", "LOCALHOST", "127.0.0.1"):
        assert app.get("/", headers={"Host": host}).status_code == 200, host
    assert host_names("::1") == {"::1", "localhost"} and host_names("0.0.0.0") is None
    assert host_names("judge.lab.example") == {"judge.lab.example"} and host_of("[::1]:8000") == "::1"


def test_model_text_is_escaped_and_scripts_are_not_allowed(store: Path) -> None:
    key = queue.judge_key(store, "alice")
    app = client(create_app(store))
    page = app.get(f"/j/{key}/next")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text or "&lt;img src=x onerror" in page.text
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert app.get("/static/app.js").status_code == 200
    assert (
        app.get("/static/..%2Fapp.py").status_code == 404 and app.get("/static/judge.html").status_code == 404
    )


def test_off_loopback_the_viewer_needs_the_token(store: Path) -> None:
    app = client(create_app(store, token="s3cret"))
    assert app.get("/").status_code == 403 and app.get("/t/0").status_code == 403
    ok = app.get("/?token=s3cret")
    assert ok.status_code == 200 and "w2sg_token" in ok.headers["set-cookie"]
    assert app.get("/").status_code == 200  # the cookie
    assert client(create_app(store, token="s3cret")).get("/?token=wrong").status_code == 403
    key = queue.judge_key(store, "alice")  # a judge's link carries its own key
    assert client(create_app(store, token="s3cret")).get(f"/j/{key}/next").status_code == 200


def test_the_viewer_filters_and_summarises(store: Path) -> None:
    key = queue.judge_key(store, "alice")
    app = client(create_app(store))
    for p in ("90", "10"):
        page = app.get(f"/j/{key}/next").text
        assert app.post(
            f"/j/{key}/verdict", data={**form(page), "p": p, "explanation": "my reasons"}
        ).is_success
    index = app.get("/").text
    assert "2 of 2 rows" in index and "sequential" in index
    assert "1 of 2 rows" in app.get("/?pmin=0.5").text and "1 of 2 rows" in app.get("/?pmax=0.5").text
    n_correct = app.get("/?verdict=correct").text.count('class="row"')
    n_wrong = app.get("/?verdict=incorrect").text.count('class="row"')
    assert n_correct + n_wrong == 2
    assert "0 of 2 rows" in app.get("/?status=failed").text
    assert "0 of 2 rows" in app.get("/?q=nowhere-to-be-found").text
    assert "2 of 2 rows" in app.get("/?q=my+reasons").text
    assert app.get("/?pmin=x").status_code == 400 and app.get("/t/99").status_code == 404


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_command_prints_a_token_off_loopback_and_logs_no_key(store: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "oversight.cli", "web", str(store), "--host", "0.0.0.0", "--port", str(port),
         "--judge", "alice"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    try:
        viewer = proc.stdout.readline()  # type: ignore[union-attr]
        judge = proc.stdout.readline()  # type: ignore[union-attr]
        token = re.search(r"\?token=(\S+)", viewer).group(1)  # type: ignore[union-attr]
        key = re.search(r"/j/(\S+)", judge).group(1)  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/j/{key}", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(f"{url}/", timeout=5)
        assert urllib.request.urlopen(f"{url}/?token={token}", timeout=5).status == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert token not in err and key not in err  # no access log


def test_the_command_on_loopback_refuses_another_host_name(store: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "oversight.cli", "web", str(store), "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def status(host: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/", headers={"Host": host})
        return conn.getresponse().status

    try:
        for _ in range(100):
            try:
                status("127.0.0.1")
                break
            except OSError:
                time.sleep(0.2)
        assert status(f"127.0.0.1:{port}") == 200 and status(f"localhost:{port}") == 200
        assert status(f"attacker.example:{port}") == 400
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_run_folder_or_a_store_but_nothing_else(tmp_path: Path, store: Path) -> None:
    from oversight.web.viewer import store_path

    run = tmp_path / "run-x"
    run.mkdir()
    with pytest.raises(FileNotFoundError, match="neither a label store nor a run folder"):
        store_path(run)
    (run / "labels.sqlite").write_bytes(store.read_bytes())
    assert store_path(run) == run / "labels.sqlite" and store_path(store) == store
