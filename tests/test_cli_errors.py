"""The CLI's one error boundary: a config, data, model or OS error raised anywhere under any command is
one `error: <message>` on stderr and exit status 2, no traceback; `w2sg --debug` shows the traceback;
an unexpected exception (a bug), typer's own exits, usage errors and Ctrl-C are left alone. And
`w2sg --help` groups the commands by area."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import numpy as np
import pytest
from cli import w2sg
from typer.testing import CliRunner

import oversight.cli  # registers every command on `app`
import oversight.cli.models
from oversight.cli.app import app

W2SG_CONFIG = "configs/w2sg-sciq.yaml"


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def assert_one_error(result, *needles: str) -> str:  # type: ignore[no-untyped-def]
    """Exit 2, exactly one `error:` line, no traceback; the error text (all its lines) holds every needle."""
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert len(errors(result.stderr)) == 1, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    text = result.stderr[result.stderr.index("error: ") :]
    for needle in needles:
        assert needle in text, (needle, text)
    return text


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- config errors ---------------------------------------------------------------------------------


def test_a_config_with_a_bad_field_is_one_error_naming_file_and_field(tmp_path: Path) -> None:
    cfg = write(tmp_path, "bad.yaml", "models:\n  m: {name: scripted/m, colour: red}\n")
    for args in (("models", "list", str(cfg)), ("chat", "m", "--config", str(cfg), "-m", "hi")):
        text = assert_one_error(invoke(*args), str(cfg), "models.m.colour")
        assert errors(text)[0].startswith(f"error: {cfg}")


def test_a_key_written_twice_is_one_error_naming_the_file_key_and_line(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys: a pasted second value would win unseen."""
    cfg = write(tmp_path, "twice.yaml", "models:\n  m: {name: scripted/m}\n  m: {name: scripted/n}\n")
    assert_one_error(invoke("models", "list", str(cfg)), str(cfg), "found key 'm' twice", "line 3")
    ok = write(tmp_path, "ok.yaml", "models:\n  m: {name: scripted/m}\n")
    twice = "models={a: {name: x}, a: {name: y}}"
    assert_one_error(invoke("models", "list", str(ok), "--set", twice), "found key 'a' twice")


def test_a_bad_set_key_is_one_error_naming_the_key(tmp_path: Path) -> None:
    result = invoke("train", W2SG_CONFIG, "--set", "sizes.weakk=3", "--set", f"out_dir={tmp_path}")
    assert_one_error(result, W2SG_CONFIG, "sizes.weakk", "Extra inputs are not permitted")
    assert not list(tmp_path.iterdir())


def test_a_commands_own_check_goes_through_the_boundary(tmp_path: Path) -> None:
    cfg = write(tmp_path, "m.yaml", "models:\n  a: {name: scripted/a}\n")
    assert_one_error(invoke("models", "check", str(cfg), "--only", "zz"), "no model named ['zz']")


# --- data errors -----------------------------------------------------------------------------------


def bad_data_args(tmp_path: Path) -> list[str]:
    """`w2sg train` on a data folder whose SciQ train file has a malformed line 2."""
    data = tmp_path / "data"
    data.mkdir()
    good = {"question": "q?", "answer": "a", "label": 1, "weak_p_true": 0.5, "weak_p_true_with_support": 0.5}
    (data / "train_weak_labels.jsonl").write_text(json.dumps(good) + '\n{"question": "q2"\n')
    (data / "test.jsonl").write_text("")
    runs = tmp_path / "runs"
    return [
        "train",
        W2SG_CONFIG,
        "--set",
        f"dataset={{name: sciq, path: {json.dumps(str(data))}}}",
        "--set",
        f"out_dir={runs}",
    ]


def test_a_malformed_data_line_is_one_error_naming_file_and_line(tmp_path: Path) -> None:
    result = invoke(*bad_data_args(tmp_path))
    text = assert_one_error(result, f"{tmp_path / 'data' / 'train_weak_labels.jsonl'}:2: not valid JSON")
    assert len(text.strip().splitlines()) == 1


def test_debug_shows_the_traceback_of_the_same_data_error(tmp_path: Path) -> None:
    out = w2sg("--debug", *bad_data_args(tmp_path))  # the real entry point, `python -m oversight.cli`
    assert out.returncode != 0
    assert "Traceback (most recent call last)" in out.stderr
    assert "w2sg.data.DataError" in out.stderr and "train_weak_labels.jsonl:2: not valid JSON" in out.stderr


# --- model errors ----------------------------------------------------------------------------------


def test_an_unknown_provider_is_one_error() -> None:
    assert_one_error(invoke("chat", "nope/x", "-m", "hi"), "unknown provider 'nope'")


def test_a_model_that_cannot_be_reached_is_one_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    cfg = write(tmp_path, "m.yaml", f"models:\n  m: {{name: 'openai/x@{url}', retry: {{max_attempts: 1}}}}\n")
    text = assert_one_error(invoke("chat", "m", "--config", str(cfg), "-m", "hi"), "openai/x@", "gave up")
    assert len(text.strip().splitlines()) == 1


def test_models_check_still_reports_each_model_and_exits_1(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    cfg = write(tmp_path, "m.yaml", f"models:\n  m: {{name: 'openai/x@{url}', retry: {{max_attempts: 1}}}}\n")
    result = invoke("models", "check", str(cfg))
    assert result.exit_code == 1 and "m: openai/x@" in result.stderr and not errors(result.stderr)


# --- OS errors and the rest ------------------------------------------------------------------------


def test_a_missing_file_is_one_error_from_the_real_entry_point(tmp_path: Path) -> None:
    out = w2sg("compare", str(tmp_path / "nothere"), "a", "b")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert errors(out.stderr) == [
        f"error: {tmp_path / 'nothere' / 'predictions.npz'}: no such file (run `w2sg train` first)"
    ]


def test_an_os_error_inside_a_command_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "predictions.npz").mkdir()  # np.load: IsADirectoryError, which no command catches
    assert_one_error(invoke("compare", str(tmp_path), "a", "b"), "Is a directory", "predictions.npz")


def test_an_os_error_is_re_raised_with_debug(tmp_path: Path) -> None:
    (tmp_path / "predictions.npz").mkdir()
    result = invoke("--debug", "compare", str(tmp_path), "a", "b")
    assert result.exit_code != 0 and isinstance(result.exception, IsADirectoryError)
    assert not errors(result.stderr)


def test_export_of_a_missing_store_is_one_error(tmp_path: Path) -> None:
    store = tmp_path / "none.sqlite"
    assert_one_error(
        invoke("export", str(store), "--out", str(tmp_path / "x.jsonl")), f"{store}: no such store"
    )


def test_a_key_error_prints_its_message_without_quotes(tmp_path: Path) -> None:
    np.savez(tmp_path / "predictions.npz", ids=np.array(["r"]), gold=np.array([1]), a=np.array([0.9]))
    text = assert_one_error(invoke("compare", str(tmp_path), "a", "nope"))
    assert errors(text) == [f"error: {tmp_path / 'predictions.npz'}: no column 'nope'; columns: a"]


def test_markup_in_a_message_is_printed_as_is() -> None:
    assert_one_error(invoke("chat", "nope/[bold]x", "-m", "hi"), "'nope/[bold]x'")


@pytest.mark.parametrize("bug", [TypeError("a bug"), NotImplementedError("not yet")])
def test_an_unexpected_exception_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch, bug: Exception) -> None:
    def broken(spec: object) -> None:
        raise bug

    monkeypatch.setattr(oversight.cli.models, "get_model", broken)
    result = invoke("chat", "scripted/x", "-m", "hi")
    assert result.exception is bug and not errors(result.stderr)


def test_ctrl_c_usage_errors_and_exits_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(spec: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(oversight.cli.models, "get_model", interrupted)
    result = invoke("chat", "scripted/x", "-m", "hi")
    assert result.exit_code == 130 and not errors(result.stderr)
    usage = invoke("chat", "scripted/x")  # -m is required: typer's usage error, as before
    assert usage.exit_code == 2 and "Missing option" in usage.stderr and not errors(usage.stderr)


def test_help_groups_the_commands_by_area() -> None:
    result = invoke("--help")
    assert result.exit_code == 0 and "--debug" in result.stdout
    panels: dict[str, list[str]] = {}
    current = None
    for line in result.stdout.splitlines():
        if m := re.match(r"\s*╭─ (.+?) ─", line):
            current = m.group(1)
            panels[current] = []
        elif current and (m := re.match(r"\s*│ (\w+)\s", line)):
            panels[current].append(m.group(1))
    del panels["Options"]
    assert list(panels) == ["Experiments", "Oversight graphs", "Labelling", "Models"]
    assert sorted(panels["Experiments"]) == sorted(
        [
            "run",
            "train",
            "ensemble",
            "icl",
            "ladder",
            "compare",
            "tournament",
            "grid",
            "debaters",
            "leaderboard",
        ]
    )
    assert sorted(panels["Oversight graphs"]) == sorted(["debate", "graph", "interact", "human", "judge"])
    assert panels["Labelling"] == ["label", "export", "web"]
    assert sorted(panels["Models"]) == ["chat", "models"]
