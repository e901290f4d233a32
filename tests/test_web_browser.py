"""`w2sg web` in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`) driven
by selenium against the real server (`w2sg web` in a subprocess on 127.0.0.1). A judge session end
to end, a follow-up answered by the model, two judges at once, a restart between items, an XSS
payload that stays inert, a bad submission refused, the viewer's filters. The screenshots in
docs/img/web-*.png (docs/human-studies.md) are taken here: `W2SG_SCREENSHOTS=docs/img pytest
tests/test_web_browser.py` rewrites them (otherwise they go to a temporary folder, so a test run
leaves the checkout as it was).

Without a browser these tests skip, unless W2SG_REQUIRE_BROWSER=1 (as `.ci/run` sets): then they
fail, so CI never skips them silently. Locally: `apt-get install chromium chromium-driver`, then
`pytest tests/test_web_browser.py`.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cli import ROOT, w2sg
from test_human_label import human_debate

from oversight.web import queue

pytestmark = pytest.mark.slow

CHROMIUM, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", "/usr/bin/chromedriver"
IMG = Path(os.environ.get("W2SG_SCREENSHOTS") or tempfile.mkdtemp(prefix="w2sg-screens-"))


def browser() -> Any:
    """A headless Chromium; skipped (or failed with W2SG_REQUIRE_BROWSER=1) when there is none."""
    missing = [p for p in (CHROMIUM, DRIVER) if not Path(p).exists()]
    if missing:
        why = f"no browser for the web tests: {', '.join(missing)} missing"
        why += " (apt-get install chromium chromium-driver)"
        if os.environ.get("W2SG_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1000"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


@pytest.fixture
def driver() -> Iterator[Any]:
    d = browser()
    try:
        yield d
    finally:
        d.quit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(store: Path, port: int) -> Iterator[str]:
    """`w2sg web STORE` on 127.0.0.1:port, until the block ends."""
    cmd = [sys.executable, "-m", "oversight.cli", "web", str(store), "--port", str(port), "--timeout", "600"]
    with serving(cmd, f"http://127.0.0.1:{port}", "/static/app.css") as url:
        yield url


@contextmanager
def serving(cmd: list[str], url: str, ready: str, tries: int = 300) -> Iterator[str]:
    """A server process (`cmd`, from the repository root) at `url`, once `url + ready` answers,
    until the block ends."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(tries):
            try:
                urllib.request.urlopen(f"{url}{ready}", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"{' '.join(cmd[2:])} exited: {proc.stderr.read()}") from None  # type: ignore[union-attr]
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def by_id(d: Any, id_: str) -> Any:
    return d.find_element("id", id_)


def click(d: Any, element: Any) -> None:
    """Click something that loads a page, and wait until the new page replaced the old one."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    old = d.find_element("tag name", "html")
    element.click()

    def replaced(_: Any) -> bool:
        # Selenium's staleness_of only catches a stale reference; asked mid-navigation, chromedriver
        # may instead answer "Node with given id does not belong to the document" (seen in CI).
        try:
            old.is_enabled()
        except WebDriverException:
            return d.execute_script("return document.readyState") == "complete"
        return False

    # A script asked while the new page is still being committed can fail too: ask again.
    WebDriverWait(d, 30, ignored_exceptions=(WebDriverException,)).until(replaced)


def judge(d: Any, p: int, why: str) -> None:
    """Move the slider to `p`, write `why`, submit."""
    d.execute_script(
        "const s = document.getElementById('p'); s.value = arguments[0];"
        " s.dispatchEvent(new Event('input'));",
        p,
    )
    assert by_id(d, "p-out").text == str(p)  # app.js runs under the Content-Security-Policy
    box = by_id(d, "explanation")
    box.clear()
    box.send_keys(why)
    click(d, by_id(d, "submit"))


def labels(store: Path) -> list[tuple[str, float, str]]:
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "SELECT example_id, p_true, json_extract(record, '$.human.judge') FROM labels"
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    out = w2sg("label", str(human_debate(tmp_path)))
    assert out.returncode == 0 and "4 waiting" in out.stdout, out.stderr
    return tmp_path / "h.sqlite"


def test_a_judge_session_end_to_end(driver: Any, store: Path) -> None:
    key = queue.judge_key(store, "alice")
    with server(store, free_port()) as url:
        driver.get(f"{url}/j/{key}")
        assert by_id(driver, "waiting").text == "4"
        click(driver, by_id(driver, "start"))
        question, answer = by_id(driver, "question").text, by_id(driver, "answer").text
        speakers = [e.text for e in driver.find_elements("css selector", "#transcript .speaker")]
        assert speakers == [
            "Debater A (argues the answer is correct)",
            "Debater B (argues the answer is incorrect)",
        ]
        assert "seconds" not in driver.page_source and "tokens" not in driver.page_source  # no timings
        by_id(driver, "explanation").send_keys("Debater A's argument holds up; B offers nothing.")
        assert driver.find_elements("css selector", "#transcript q.verified")  # A's quote, checked
        assert driver.find_elements("css selector", "#transcript q.unverified")  # B's, not found
        driver.execute_script(
            "const s = document.getElementById('p'); s.value = 80; s.dispatchEvent(new Event('input'));"
        )
        driver.save_screenshot(str(IMG / "web-judge.png"))
        judge(driver, 80, "Debater A's argument holds up; B offers nothing.")
        assert "p(true) = 0.80" in by_id(driver, "recorded").text
        ((_, p, who),) = labels(store)  # in the store when the page said so
        assert p == 0.8 and who == "alice"
        click(driver, by_id(driver, "next"))
        assert (by_id(driver, "question").text, by_id(driver, "answer").text) != (question, answer)


def test_a_follow_up_question_answered_by_the_model(driver: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "i.yaml"
    cfg.write_text(
        f"split: test\nquestions: 1\nstore: {tmp_path / 'i.sqlite'}\n"
        "models:\n  asst:\n    name: scripted/asst\n    scripted:\n      rules:\n"
        "        - {match: 'The judge asks', reply: 'It says spores develop into female gametophytes.'}\n"
        "        - {match: '.*', reply: 'The answer fits the passage. STANCE: correct'}\n"
        "graph: {kind: interaction, assistant: asst, overseer: human, max_followups: 1}\n"
    )
    assert w2sg("label", str(cfg)).returncode == 0
    store = tmp_path / "i.sqlite"
    key = queue.judge_key(store, "alice")
    with server(store, free_port()) as url:
        driver.get(f"{url}/j/{key}/next")
        assert "The answer fits the passage" in by_id(driver, "transcript").text
        by_id(driver, "followup").send_keys("Why should I believe that?")
        click(driver, by_id(driver, "ask"))
        transcript = by_id(driver, "transcript").text
        assert "Why should I believe that?" in transcript
        assert "It says spores develop into female gametophytes." in transcript
        assert not driver.find_elements("id", "ask-form")  # one follow-up allowed: now decide
        by_id(driver, "explanation").send_keys("The assistant's answer to my question convinced me.")
        driver.save_screenshot(str(IMG / "web-judge-followup.png"))
        judge(driver, 70, "The assistant's answer to my question convinced me.")
        assert "p(true) = 0.70" in by_id(driver, "recorded").text
    assert [p for _, p, _ in labels(store)] == [0.7]


def test_two_judges_at_once(store: Path) -> None:
    alice, bob = queue.judge_key(store, "alice"), queue.judge_key(store, "bob")
    a, b = browser(), browser()
    try:
        with server(store, free_port()) as url:
            a.get(f"{url}/j/{alice}/next")
            b.get(f"{url}/j/{bob}/next")
            thread = "input[name=thread]"
            ta = a.find_element("css selector", thread).get_attribute("value")
            tb = b.find_element("css selector", thread).get_attribute("value")
            assert ta != tb
            judge(a, 90, "Alice thinks it is right.")
            judge(b, 20, "Bob thinks it is wrong.")
            assert "recorded" in a.page_source and "recorded" in b.page_source
    finally:
        a.quit()
        b.quit()
    assert sorted((p, who) for _, p, who in labels(store)) == [(0.2, "bob"), (0.9, "alice")]


def test_a_server_restart_between_items(driver: Any, store: Path) -> None:
    key, port = queue.judge_key(store, "alice"), free_port()
    with server(store, port) as url:
        driver.get(f"{url}/j/{key}/next")
        first = by_id(driver, "answer").text
        judge(driver, 65, "Seems right to me.")
    with server(store, port) as url:  # the same link after a restart
        driver.get(f"{url}/j/{key}")
        assert by_id(driver, "waiting").text == "3"
        click(driver, by_id(driver, "start"))
        assert by_id(driver, "answer").text != first or by_id(driver, "question").text
        judge(driver, 30, "Seems wrong to me.")
    assert sorted(p for _, p, _ in labels(store)) == [0.3, 0.65]


def test_an_xss_payload_in_a_transcript_stays_inert(driver: Any, store: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    key = queue.judge_key(store, "alice")
    with server(store, free_port()) as url:
        driver.get(f"{url}/j/{key}/next")
        text = by_id(driver, "transcript").text
        assert "<script>alert(1)</script>" in text and "<img src=x onerror=alert(1)>" in text  # shown as text
        assert driver.find_elements("css selector", "#transcript script, #transcript img") == []
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018  (reading it is what raises)


def test_a_bad_submission_is_refused(driver: Any, store: Path) -> None:
    key = queue.judge_key(store, "alice")
    with server(store, free_port()) as url:
        driver.get(f"{url}/j/{key}/next")
        thread = driver.find_element("css selector", "input[name=thread]").get_attribute("value")
        judge(driver, 60, "")  # no explanation
        assert "at least 2 words is required" in by_id(driver, "error").text
        assert driver.find_element("css selector", "input[name=thread]").get_attribute("value") == thread
        assert by_id(driver, "p-out").text == "60"  # what the judge had set is kept
    assert labels(store) == []


def test_the_viewers_filters(driver: Any, store: Path) -> None:
    key = queue.judge_key(store, "alice")
    with server(store, free_port()) as url:
        driver.get(f"{url}/j/{key}/next")
        judge(driver, 90, "A quotes the passage word for word.")
        click(driver, by_id(driver, "next"))
        judge(driver, 15, "B's claim has no support at all.")
        driver.get(f"{url}/")
        assert by_id(driver, "matched").text == "2 of 2 rows"
        assert "sequential" in by_id(driver, "summary").text
        driver.save_screenshot(str(IMG / "web-viewer.png"))
        by_id(driver, "f-pmin").send_keys("0.5")
        click(driver, by_id(driver, "f-apply"))
        assert by_id(driver, "matched").text == "1 of 2 rows"
        by_id(driver, "f-pmin").clear()
        by_id(driver, "f-q").send_keys("no support")
        click(driver, by_id(driver, "f-apply"))
        assert by_id(driver, "matched").text == "1 of 2 rows"
        rows = driver.find_elements("css selector", "#rows tr.row")
        assert len(rows) == 1 and "0.15" in rows[0].text
        click(driver, rows[0].find_element("tag name", "a"))
        assert "B's claim has no support at all." in by_id(driver, "explanation").text
        assert "alice" in by_id(driver, "provenance").text
        driver.save_screenshot(str(IMG / "web-transcript.png"))
