"""Reliability of labelling runs (issue 8) against the real local OpenAI-compatible server with
injected faults: every selected row lands in the store once; retried labels equal a clean run's bit
for bit; exhausted retries and malformed verdicts are recorded failures, never dropped or guessed;
a SIGKILLed run resumes to the clean labels; bad data rows and configs fail naming the file, line
or field, and the store keeps every label it had."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli import w2sg
from label_runs import labels, sigkill_midway

from agents import ConfigError, get_model, load_config
from agents.testing import FakeServer, p_yes
from oversight.labelling.label import LabelConfig, LabelRun, label, select_rows
from w2sg.data import DataError
from w2sg.datasets import sciq_dir

# Transient faults a real API serves; 20 % of requests get one (seeded, so the count is fixed).
FAULTS = ["429", "500", "timeout", "malformed", "empty"]
FAULT_RATE = 0.2
TIMEOUT_S = 1.5  # client timeout; an injected `timeout` holds its reply twice as long
SCIQ = sciq_dir() / "test.jsonl"  # the shared file, or W2SG_DATA_DIR's


def write_config(
    tmp_path: Path,
    server: FakeServer,
    store: str,
    *,
    protocol: str = "blind",
    questions: int | None = 8,
    attempts: int = 8,
    concurrency: int = 8,
    rows_per_graph: int = 1,
    data_dir: Path | None = None,
) -> Path:
    """A `w2sg label` YAML whose judge (and debater) is the fake server, with short retry waits."""

    def spec() -> dict[str, Any]:  # a fresh dict per model: shared ones become YAML aliases
        return {
            "name": f"openai/fake@{server.url}",
            "retry": {"max_attempts": attempts, "initial_s": 0.01, "max_wait_s": 0.05},
            "openai": {"timeout_s": TIMEOUT_S, "timeout_per_token_s": 0},
        }

    cfg: dict[str, Any] = {
        "split": "test",
        "questions": questions,
        "concurrency": concurrency,
        "rows_per_graph": rows_per_graph,
        "store": str(tmp_path / store),
        "models": {"judge": spec(), "deb": spec()},
        "graph": {
            "kind": "debate",
            "protocol": protocol,
            "rounds": 1,
            "debater": "deb",
            "judge": "judge",
            "max_tokens": 24,
        },
    }
    if data_dir is not None:
        cfg["dataset"] = {"name": "sciq", "path": str(data_dir)}
    path = tmp_path / f"{store}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


async def run(path: Path) -> LabelRun:
    return await label(load_config(path, LabelConfig))


def faulty(server: FakeServer, **settings: Any) -> None:
    server.reset(
        fault_rate=FAULT_RATE, fault_kinds=FAULTS, seed=37, timeout_sleep_s=2 * TIMEOUT_S, **settings
    )


def injected(server: FakeServer) -> tuple[int, float, set[str]]:
    """Faults served, their fraction of all requests, and their kinds."""
    stats = server.stats()
    n = sum(stats["injected"].values())
    return n, n / max(1, stats["requests"]), set(stats["injected"])


def assert_every_row_once(path: Path) -> None:
    cfg = load_config(path, LabelConfig)
    want = sorted(e.id for e in select_rows(cfg)[0])
    with sqlite3.connect(cfg.store) as db:
        got = [r[0] for r in db.execute("SELECT example_id FROM labels ORDER BY example_id")]
    assert got == want


def failures(store: Path) -> list[tuple[str, float | None, str]]:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT example_id, p_true, error FROM labels WHERE status = 'failed'").fetchall()


# rows_per_graph 4: several rows per graph run (graphs.batch) must give the same labels and the
# same per-row failures as one row per run.
@pytest.mark.parametrize(("protocol", "rows_per_graph"), [("blind", 1), ("sequential", 1), ("sequential", 4)])
async def test_faults_are_retried_to_exactly_the_clean_labels(
    tmp_path: Path, server: FakeServer, protocol: str, rows_per_graph: int
) -> None:
    clean = await run(write_config(tmp_path, server, "clean.sqlite", protocol=protocol))
    assert clean.failed == 0 and clean.labelled == 16
    faulty(server)
    cfg = write_config(tmp_path, server, "faulty.sqlite", protocol=protocol, rows_per_graph=rows_per_graph)
    got = await run(cfg)
    n, frac, kinds = injected(server)
    assert frac >= 0.1 and (protocol == "blind" or kinds == set(FAULTS)), server.stats()["injected"]
    assert got.failed == 0 and got.labelled == 16
    # Each fault cost one retry (a slow reply on a busy machine may add a client timeout).
    assert sum(u["retries"] for u in got.usage.values()) >= n
    assert_every_row_once(cfg)
    assert labels(tmp_path / "faulty.sqlite") == labels(tmp_path / "clean.sqlite")  # p_true bit for bit


@pytest.mark.parametrize("rows_per_graph", [1, 4])
async def test_exhausted_retries_are_recorded_failures_and_a_rerun_completes(
    tmp_path: Path, server: FakeServer, rows_per_graph: int
) -> None:
    await run(write_config(tmp_path, server, "clean.sqlite"))
    clean = labels(tmp_path / "clean.sqlite")
    faulty(server)
    cfg = write_config(tmp_path, server, "once.sqlite", attempts=1, rows_per_graph=rows_per_graph)
    got = await run(cfg)
    n, _, _ = injected(server)
    # A blind judge makes one request per row, so each fault is exactly one failed row.
    assert got.failed == n > 0 and got.labelled == 16 - n
    assert_every_row_once(cfg)
    failed = failures(tmp_path / "once.sqlite")
    assert len(failed) == n
    for _, p, error in failed:
        assert p is None  # nothing guessed
        assert error.startswith("RetriesExhaustedError: ") and "gave up after 1 attempts" in error
        assert any(s in error for s in ("HTTP 429", "HTTP 500", "timed out", "malformed response"))
    ok = {k: v for k, v in labels(tmp_path / "once.sqlite").items() if v[0] is not None}
    assert len(ok) == 16 - n and ok == {k: clean[k] for k in ok}
    # The next run (same config) retries exactly the failed rows.
    server.reset()
    again = await run(cfg)
    assert (again.already_done, again.labelled, again.failed) == (16 - n, n, 0)
    assert labels(tmp_path / "once.sqlite") == clean


@pytest.mark.parametrize("rows_per_graph", [1, 2])
async def test_a_sigkilled_run_under_faults_resumes_to_exactly_the_clean_labels(
    tmp_path: Path, server: FakeServer, rows_per_graph: int
) -> None:
    def cfg(store: str) -> Path:
        return write_config(
            tmp_path,
            server,
            store,
            protocol="sequential",
            questions=15,
            concurrency=4,
            rows_per_graph=rows_per_graph,
        )

    await run(cfg("clean.sqlite"))
    faulty(server, latency_s=0.1)  # slow enough that the kill lands mid-way
    killed = cfg("killed.sqlite")
    n = sigkill_midway(killed, tmp_path / "killed.sqlite", after=6)
    assert 0 < n < 30, n
    killed_faults, _, _ = injected(server)
    server.control(latency_s=0.0)
    resumed = await run(killed)
    assert (resumed.already_done, resumed.labelled, resumed.failed) == (n, 30 - n, 0)
    total, frac, _ = injected(server)
    assert killed_faults > 0 and total > killed_faults and frac >= 0.1
    assert_every_row_once(killed)
    assert labels(tmp_path / "killed.sqlite") == labels(tmp_path / "clean.sqlite")


async def test_a_malformed_verdict_is_retried_by_the_wrapper(server: FakeServer) -> None:
    model = get_model(f"openai/fake@{server.url}", retry={"max_attempts": 3, "initial_s": 0.01})
    server.control(faults=["no_choice", "no_choice"])
    cp = await model.choice_probs("Is copper a metal?", ["Yes", "No"])
    assert cp["Yes"] == pytest.approx(p_yes("Is copper a metal?"), abs=1e-12)
    assert (server.stats()["requests"], model.usage.retries, model.usage.failures) == (3, 2, 0)
    await model.aclose()


async def test_malformed_verdicts_are_retried_then_recorded_as_failures(
    tmp_path: Path, server: FakeServer
) -> None:
    await run(write_config(tmp_path, server, "clean.sqlite", questions=2))
    cfg = write_config(tmp_path, server, "bad.sqlite", questions=2, attempts=3)
    server.reset(fault_rate=1.0, fault_kinds=["no_choice"])  # the judge never says Yes or No
    got = await run(cfg)
    assert (got.labelled, got.failed) == (0, 4)
    assert server.stats()["requests"] == 4 * 3  # every row tried max_attempts times
    failed = failures(tmp_path / "bad.sqlite")
    assert len(failed) == 4
    for _, p, error in failed:
        assert p is None  # not dropped, not turned into 0.5
        assert error.startswith("NoChoiceProbsError: ") and "gave up after 3 attempts" in error
        assert "none of ['Yes', 'No'] among the top-2 first tokens ['Maybe', 'Perhaps']" in error
    # A judge that recovers within the attempts gives the clean labels.
    server.reset(faults=["no_choice"] * 2)
    again = await run(cfg)
    assert (again.labelled, again.failed, again.usage["judge"]["retries"]) == (4, 0, 2)
    assert labels(tmp_path / "bad.sqlite") == labels(tmp_path / "clean.sqlite")


async def test_bad_rows_and_configs_fail_clearly_and_keep_the_store(
    tmp_path: Path, server: FakeServer
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    good = SCIQ.read_text().splitlines()[:6]
    (data / "test.jsonl").write_text("\n".join(good) + "\n")
    cfg = write_config(tmp_path, server, "s.sqlite", questions=None, data_dir=data)
    assert (await run(cfg)).labelled == 12
    before = labels(tmp_path / "s.sqlite")

    # The file grows, with a broken line in the middle: the run stops before labelling anything.
    more = SCIQ.read_text().splitlines()[6:10]
    (data / "test.jsonl").write_text("\n".join([*good[:3], '{"question": "cut off', *good[3:], *more]) + "\n")
    out = w2sg("label", str(cfg))
    assert out.returncode == 2 and f"{data / 'test.jsonl'}:4: not valid JSON" in out.stderr, out.stderr
    no_field = '{"question": "Q?", "distractor1": "a", "distractor2": "b", "distractor3": "c"}'
    (data / "test.jsonl").write_text("\n".join([*good[:3], no_field, *good[3:]]) + "\n")
    with pytest.raises(
        DataError,
        match=r"test\.jsonl:4: missing column 'correct_answer' \(columns: distractor1, distractor2, ",
    ):
        await run(cfg)
    (data / "test.jsonl").write_text("\n".join(good) + "\n")

    # Bad configs aimed at the same store: the error names the file and the field.
    bad = yaml.safe_load(cfg.read_text())
    bad["models"]["judge"]["retry"]["max_attempts"] = 0
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid config\n  models\.judge\.retry\.max_attempts"):
        load_config(tmp_path / "bad.yaml", LabelConfig)
    bad = yaml.safe_load(cfg.read_text())
    bad["graph"]["judge"] = "jduge"  # a typo: neither a named model nor a provider
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(bad))
    # ... caught when the config loads, before the store is opened
    with pytest.raises(ConfigError, match=r"typo\.yaml: invalid config\n.*graph\.judge: 'jduge' is neither"):
        load_config(tmp_path / "typo.yaml", LabelConfig)

    assert labels(tmp_path / "s.sqlite") == before
