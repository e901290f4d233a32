"""Plain progress lines (`w2sg.progress`): start / throttled middle / done lines from a fake clock,
`W2SG_PROGRESS_EVERY`, the CLI's logging when stderr is not a terminal (a real `w2sg train` with
stderr to a file), and one-line retry warnings from the real fault-injecting local server."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agents.model import retry_message
from agents.testing import FakeServer
from w2sg import progress
from w2sg.progress import duration, track

ROOT = Path(__file__).resolve().parents[1]
#: What a plain log line must not hold: ANSI escapes, box drawing, rich's braille spinner, a \r.
NOT_PLAIN = re.compile("[\x1b\r\u2500-\u257f\u2800-\u28ff]")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The messages `w2sg.progress` logs at INFO, whatever the test process's logging is."""
    monkeypatch.delenv(progress.EVERY_ENV, raising=False)
    h = Lines()
    progress.reset()
    progress.log.addHandler(h)
    progress.log.setLevel(logging.INFO)
    progress.log.propagate = False
    yield h.lines
    progress.log.removeHandler(h)
    progress.reset()


def test_a_quiet_stage_speaks_only_once_it_outlasts_the_interval(lines: list[str]) -> None:
    """One training run of many: nothing when it is short; like any stage once it is long."""
    clock = Clock()
    with track("train member", 10, unit="steps", clock=clock, quiet=True) as t:
        clock.t += 5.0
        t.set(10)
    assert lines == []
    with track("train judge", 10, unit="steps", clock=clock, quiet=True) as t:
        clock.t += 31.0
        t.advance(4)
        clock.t += 10.0
        t.set(10)
    assert lines == [
        "train judge: 4/10 steps (40%), 31s elapsed, ETA 46s",
        "train judge: done, 10 steps in 41s",
    ]
    with pytest.raises(RuntimeError), track("train bad", 10, clock=clock, quiet=True):
        raise RuntimeError
    assert lines[-1] == "train bad: stopped at 0/10 after 0.0s"


def test_start_throttled_middle_and_done_lines(lines: list[str]) -> None:
    clock = Clock()
    with track("label judge (40 rows)", 40, unit="rows", clock=clock) as t:
        assert lines == ["label judge (40 rows): started, 40 rows"]
        for _ in range(10):
            clock.t += 2.0  # 20 s: under the default 30 s, nothing more
            t.advance()
        assert len(lines) == 1
        clock.t += 10.0  # 30 s since the start: one line
        t.advance(2)
        assert lines[1] == "label judge (40 rows): 12/40 rows (30%), 30s elapsed, ETA 1m10s"
        clock.t += 29.0  # the next is due 30 s after that one
        t.advance()
        assert len(lines) == 2
        clock.t += 1.0
        t.set(26)
        assert lines[2] == "label judge (40 rows): 26/40 rows (65%), 1m00s elapsed, ETA 32s"
        clock.t += 45.0
        t.set(40)
    assert len(lines) == 5
    assert lines[3] == "label judge (40 rows): 40/40 rows (100%), 1m45s elapsed, ETA 0.0s"
    assert lines[4] == "label judge (40 rows): done, 40 rows in 1m45s"
    t.close()  # once only
    assert len(lines) == 5


def test_every_zero_emits_each_update_and_other_shapes(
    lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(progress.EVERY_ENV, "0")
    clock = Clock()
    with track("train FeatureHead (30 rows)", 3, unit="steps", clock=clock) as t:
        for _ in range(3):
            clock.t += 4.0
            t.advance()
    assert lines == [
        "train FeatureHead (30 rows): started, 3 steps",
        "train FeatureHead (30 rows): 1/3 steps (33%), 4.0s elapsed, ETA 8.0s",
        "train FeatureHead (30 rows): 2/3 steps (67%), 8.0s elapsed, ETA 4.0s",
        "train FeatureHead (30 rows): 3/3 steps (100%), 12s elapsed, ETA 0.0s",
        "train FeatureHead (30 rows): done, 3 steps in 12s",
    ]
    lines.clear()
    # Unknown total, no unit: no percentage, no ETA.
    with track("scan", None, clock=clock) as t:
        clock.t += 3600 * 2 + 180
        t.advance(5)
    assert lines == ["scan: started", "scan: 5, 2h03m elapsed", "scan: done, 5 in 2h03m"]
    lines.clear()
    # Resumed: the ETA counts only this run's rate; an exception ends with `stopped at`.
    with pytest.raises(RuntimeError), track("ladder x", 12, unit="nodes", start=4, clock=clock) as t:
        clock.t += 10.0
        t.advance(2)  # 2 nodes in 10 s: 6 more take 30 s
        t.note("rung 1/2 mid done")
        raise RuntimeError("boom")
    assert lines == [
        "ladder x: started, 12 nodes (resuming at 4)",
        "ladder x: 6/12 nodes (50%), 10s elapsed, ETA 30s",
        "ladder x: rung 1/2 mid done",
        "ladder x: stopped at 6/12 nodes after 10s",
    ]


def test_disabled_or_unheard_trackers_format_nothing(lines: list[str]) -> None:
    clock = Clock()
    with track("quiet", 10, clock=clock, enabled=False) as t:
        clock.t += 100
        t.advance()
    progress.log.setLevel(logging.WARNING)  # W2SG_PROGRESS=off, or a terminal without -v
    with track("unheard", 10, clock=clock, every=0) as t:
        t.advance()
    assert lines == []


def test_interval_and_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, want in [("", 30.0), ("5", 5.0), ("0", 0.0), ("-1", 30.0), ("soon", 30.0), ("inf", 30.0)]:
        monkeypatch.setenv(progress.EVERY_ENV, raw)
        assert progress.interval() == want
    assert [duration(s) for s in (0.04, 9.94, 59.6, 61, 3599, 3600, 7322)] == [
        "0.0s",
        "9.9s",
        "1m00s",
        "1m01s",
        "59m59s",
        "1h00m",
        "2h02m",
    ]


def test_import_does_not_bring_torch() -> None:
    code = "import sys, w2sg.progress; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cli_logging_setup_follows_the_terminal_and_w2sg_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    import oversight.cli  # noqa: F401  (the package's `app` is the Typer app; its module is below)

    cli_app = sys.modules["oversight.cli.app"]

    class Term(io.StringIO):
        def isatty(self) -> bool:
            return True

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        for stream, mode, plain in [
            (io.StringIO(), "", True),  # a file: lines, whatever -v
            (Term(), "", False),  # a terminal: the commands' own display
            (Term(), "lines", True),
            (io.StringIO(), "off", False),
        ]:
            monkeypatch.setattr(sys, "stderr", stream)
            monkeypatch.setenv("W2SG_PROGRESS", mode)
            cli_app._setup_logging(verbose=False)
            handlers = [h for h in progress.log.handlers if isinstance(h, progress.StderrHandler)]
            assert (len(handlers), progress.log.propagate) == ((1, False) if plain else (0, True)), mode
            if plain:
                progress.log.info("stage: 1/2 rows (50%), 1.0s elapsed, ETA 1.0s")
                assert re.fullmatch(
                    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d stage: 1/2 rows \(50%\), 1.0s elapsed, ETA 1.0s\n",
                    stream.getvalue(),
                )
            elif mode == "off":
                assert not progress.log.isEnabledFor(logging.INFO)
    finally:
        progress.reset()
        root.handlers[:], root.level = saved


def run_to_file(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    """`w2sg ARGS` in a fresh process with stderr redirected to a file (not a terminal)."""
    err = tmp_path / "stderr.log"
    with err.open("w") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "oversight.cli", *args],
            stdout=subprocess.DEVNULL,
            stderr=f,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env},
            timeout=300,
        )
    return proc.returncode, err.read_text()


STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "


def test_cli_train_logs_plain_progress_lines_to_a_file(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"""
name: progress
sizes: {{weak: 15, strong: 30, val: 10, test: 20}}
weak: {{kind: features, path: embedded/tiny-gpt2, max_length: 48}}
strong: {{kind: features, path: embedded/tiny-gpt2, max_length: 48, pooling: mean}}
strong_train: {{lr: 1.0e-3, epochs: 2, eval_every: 4}}
label_sources: [weak]
losses: [xent]
n_boot: 200
out_dir: {tmp_path / "runs"}
cache_dir: {tmp_path / "cache"}
""",
    )
    rc, err = run_to_file(tmp_path, "train", str(cfg), "--device", "cpu", W2SG_PROGRESS_EVERY="0")
    assert rc == 0, err
    assert not NOT_PLAIN.search(err), err
    lines = err.splitlines()
    assert all(re.match(STAMP, line) for line in lines), err
    features = r"features tiny-gpt2\S* \(\d+ rows\)"
    for pattern in [
        rf"{features}: 16/\d+ rows \(\d+%\), [\d.]+s elapsed, ETA [\d.]+s",
        rf"{features}: done, \d+ rows in [\d.]+s",
        r"train weak teacher \(tiny-gpt2, xent, 30 rows\): 1/2 steps \(50%\), [\d.]+s elapsed, ETA [\d.]+s",
        r"train ceiling \(tiny-gpt2, xent, \d+ rows\): done, \d+ steps in [\d.]+s",
        r"train student on weak \(tiny-gpt2, xent, \d+ rows\): done, \d+ steps in [\d.]+s",
    ]:
        assert any(re.fullmatch(STAMP + pattern, line) for line in lines), (pattern, err)


def test_retry_message_is_one_short_line() -> None:
    from agents.errors import RetryableError

    name = "openai/fake@http://127.0.0.1:9/v1"
    exc = RetryableError(f"{name}: HTTP 500: injected 500")
    assert (
        retry_message(name, exc, 1, 5, 0.25)
        == f"{name}: RetryableError: HTTP 500: injected 500; retry 1/5 in 0.25s"
    )
    long = RetryableError("connection failed (" + "x" * 300 + ")\nTraceback (most recent call last):\n  ...")
    msg = retry_message(name, long, 3, 5, 2.0)
    assert "\n" not in msg and len(msg) < 300 and msg.endswith("...; retry 3/5 in 2.00s")
    assert msg.startswith(f"{name}: RetryableError: connection failed (xxx")


def test_a_retry_warning_is_one_line_in_a_log_file(tmp_path: Path, server: FakeServer) -> None:
    server.reset(faults=["500", "429"])
    spec = {
        "name": f"openai/fake@{server.url}",
        "retry": {"max_attempts": 4, "initial_s": 0.01, "max_wait_s": 0.05},
    }
    cfg = tmp_path / "models.yaml"
    cfg.write_text(yaml.safe_dump({"models": {"api": spec}}))
    rc, err = run_to_file(tmp_path, "models", "check", str(cfg))
    assert rc == 0, err
    assert not NOT_PLAIN.search(err), err
    warnings = [line for line in err.splitlines() if " WARNING " in line]
    assert len(warnings) == 2, err
    for k, (line, what) in enumerate(
        zip(warnings, ["HTTP 500: injected 500", "HTTP 429: Rate limit reached"], strict=True), 1
    ):
        head = re.escape(f"WARNING agents.model: {spec['name']}: RetryableError: {what}")
        assert re.fullmatch(rf"{STAMP}{head}.*; retry {k}/3 in 0\.0\ds", line), line
    assert len(err.splitlines()) == 2, err  # nothing else: each warning is one line
