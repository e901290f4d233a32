"""`w2sg models list|check` read only a config's `models:`, so every shipped config works; every
model name and path of a config is resolved when a command loads it, naming file and field,
before any compute is spent."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from cli import SHIPPED_CONFIGS, w2sg
from typer.testing import CliRunner

import oversight.cli
from agents import ConfigError, load_config
from agents.names import check_config_models
from oversight.cli.app import app

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str) -> tuple[int, str, str]:
    """The CLI in this process (no model loads: callers stub what would call one)."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})  # one line per message
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_models_list_accepts_every_shipped_config(path: Path) -> None:
    code, out, err = invoke("models", "list", str(path))
    assert code == 0, err
    raw = load_config(path, oversight.cli.models.ModelsSection, only=("models",)).models
    if raw:
        assert all(key in out for key in raw)
    else:
        assert "no `models:` mapping" in out


# Providers a check can call here without weights or a network: the extractive reader (asked a
# protocol prompt, the one kind it answers) and trained judges (not trained yet in a checkout:
# "not checkable") included.
LOCAL = ("scripted", "extractive", "classifier")
# Providers that need another host (openai) or a hub download (hf): checked where they are reachable.
REMOTE = ("openai", "hf")


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_models_check_accepts_every_shipped_config(path: Path) -> None:
    """It reads the config's `models:` (today's failure was at parse time) and calls the models it
    can reach offline for real; API models (another host) and SmolLM2 (slow) are only listed, by
    asking for a name the config does not have."""
    models = load_config(path, oversight.cli.models.ModelsSection, only=("models",)).models
    local = [k for k, spec in models.items() if spec.provider in LOCAL]
    if local:
        code, out, err = invoke("models", "check", str(path), *(a for k in local for a in ("--only", k)))
        assert code == 0, err
        assert all(models[k].name in out for k in local)
    if not models:
        code, out, err = invoke("models", "check", str(path))
        assert code == 0 and "no `models:` mapping" in out, err
        return
    code, out, err = invoke("models", "check", str(path), "--only", "no-such-model")
    assert code == 2 and "no model named ['no-such-model']" in err
    assert all(k in err for k in models)  # it read every configured name


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [p for p in SHIPPED_CONFIGS if "embedded/" in p.read_text()],
    ids=lambda p: p.name,
)
def test_models_check_passes_on_every_shipped_config_with_weights(path: Path) -> None:
    """Every model a shipped config names that runs on this machine (embedded weights too): exit 0."""
    models = load_config(path, oversight.cli.models.ModelsSection, only=("models",)).models
    here = [k for k, spec in models.items() if spec.provider not in REMOTE]
    if not here:
        pytest.skip("no model of this config runs offline")
    code, _, err = invoke("models", "check", str(path), *(a for k in here for a in ("--only", k)))
    assert code == 0, err


def test_models_check_protocol_only_models(tmp_path: Path) -> None:
    """The demo's reader answers only protocol prompts: asked one, it quotes; its judging, which it
    cannot do, and a judge not trained yet are "not checkable" with the reason; exit 0."""
    cfg = write(
        tmp_path,
        "models:\n  reader: {name: extractive}\n  quotes: {name: extractive/j, extractive: {judge: true}}\n"
        f"  judge: {{name: classifier/{tmp_path / 'untrained'}}}\n",
    )
    code, out, err = invoke("models", "check", str(cfg))
    assert code == 0, err
    quote = "<quote>Gravity pulls objects towards the Earth.</quote>"
    assert f"reader: The passage supports the Earth: {quote}" in out
    assert "a reader: it quotes and cannot judge" in out
    assert f"judge: not checkable (not trained yet: no folder {tmp_path / 'untrained'}" in out
    row = next(line for line in out.splitlines() if "extractive/j" in line)
    assert "extractive" in row.split("extractive/j", 1)[1] and "not checkable" not in row  # it judged


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("{name: embedded/nope}", "unknown embedded model"),
        ("{name: 'openai/m@http://127.0.0.1:9/v1', retry: {max_attempts: 1}, openai: {timeout_s: 2}}", "m"),
        ("{name: classifier/DIR}", "tokenizer"),  # a folder with no saved classifier in it
    ],
    ids=["unknown", "server-down", "not-a-classifier"],
)
def test_models_check_real_failures_exit_1(tmp_path: Path, spec: str, problem: str) -> None:
    """An unknown model, a server that does not answer, a judge folder that holds no classifier:
    said per model, exit 1, while the good model beside it is still checked."""
    (tmp_path / "empty").mkdir()
    models = f"models:\n  ok: {{name: scripted/ok}}\n  bad: {spec.replace('DIR', str(tmp_path / 'empty'))}\n"
    code, out, err = invoke("models", "check", str(write(tmp_path, models)))
    assert code == 1, (out, err)
    assert "bad: " in err and problem in err
    assert "scripted/ok" in out


def test_models_check_reads_only_the_models_section(tmp_path: Path) -> None:
    cfg = write(tmp_path, "sizes: {judge: 4}\nprotocols: {}\nmodels: {s: {name: scripted/s}}\n")
    out = w2sg("models", "check", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "scripted/s" in out.stdout
    # The section itself is still validated, naming the field.
    bad = write(tmp_path, "sizes: {judge: 4}\nmodels: {s: {name: scripted/s, colour: red}}\n", "bad.yaml")
    out = w2sg("models", "check", str(bad))
    assert out.returncode == 2 and "models.s.colour" in out.stderr and str(bad) in out.stderr


def run_config(tmp_path: Path, strong_path: str) -> Path:
    return write(
        tmp_path,
        f"""
name: typo
sizes: {{judge: 4, calib: 4, strong: 4, val: 2, test: 4}}
out_dir: {tmp_path / "runs"}
cache_dir: {tmp_path / "cache"}
models: {{reader: {{name: extractive}}}}
protocols:
  debate: {{kind: debate, protocol: consultancy, rounds: 1, debater: reader, judge: trained}}
judge_training: {{base: embedded/tiny-gpt2}}
weak: {{kind: features, path: embedded/tiny-gpt2, max_length: 48}}
strong: {{kind: features, path: {strong_path}, max_length: 48}}
""",
        "run.yaml",
    )


def test_run_with_a_typo_in_the_strong_path_fails_at_load(tmp_path: Path) -> None:
    cfg = run_config(tmp_path, "embedded/smolm2")
    t0 = time.perf_counter()
    code, _, err = invoke("run", str(cfg))
    seconds = time.perf_counter() - t0
    assert code == 2, err
    assert f"{cfg}: strong.path: unknown embedded model 'embedded/smolm2'; choose one of" in err
    assert seconds < 2, seconds
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_run_typo_as_a_user_sees_it(tmp_path: Path) -> None:
    cfg = run_config(tmp_path, "embedded/smolm2")
    out = w2sg("run", str(cfg))
    assert out.returncode == 2
    assert f"{cfg}: strong.path: unknown embedded model 'embedded/smolm2'" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "runs").exists()


def w2sg_yaml(strong: str) -> str:
    """A W2SG experiment writing under OUT (each test puts its folder there)."""
    return (
        "out_dir: OUT\nweak: {kind: features, path: embedded/tiny-gpt2, max_length: 48}\n"
        f"strong: {{kind: features, path: {strong}, max_length: 48}}\n"
    )


@pytest.mark.parametrize(
    ("command", "text", "field"),
    [
        (["train"], w2sg_yaml("embedded/smolm2"), "strong.path"),
        (["ensemble"], w2sg_yaml("./no/such/dir"), "strong.path"),
        (["icl"], w2sg_yaml("embedded/tiny-gpt2") + "icl: {embedder: embedded/minilmm}\n", "icl.embedder"),
        (
            ["ladder"],
            "out_dir: OUT\nrungs:\n"
            "  - {name: a, questions: 4, model: {kind: features, path: embedded/minilm}}\n"
            "  - {name: b, questions: 4, model: {kind: seq_cls, path: embedded/smolm2}}\n",
            "rungs.1.model.path",
        ),
        (
            ["label"],
            "store: OUT/l.sqlite\nmodels: {deb: {name: embedded/smolm2}}\n"
            "graph: {kind: debate, protocol: consultancy, debater: deb, judge: scripted}\n",
            "models.deb.name",
        ),
        (
            ["label"],
            "store: OUT/l.sqlite\ngraph: {kind: debate, protocol: consultancy, debater: scripted, "
            "judge: 'classifier/OUT/judge', judge_kind: trained}\n",
            "graph.judge",
        ),
        (["debate", "-q", "q", "-a", "a"], "judge: embedded/smolm2\ndebater: scripted\n", "judge"),
        (["debate", "-q", "q", "-a", "a"], "judge: scripted\ndebater: vllm/x\n", "debater"),
        (["interact", "-q", "q", "-a", "a"], "assistant: hf/OUT/nope\noverseer: simulated\n", "assistant"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_every_command_resolves_models_at_load(
    tmp_path: Path, command: list[str], text: str, field: str
) -> None:
    out = tmp_path / "out"
    cfg = write(tmp_path, text.replace("OUT", str(out)))
    code, _, err = invoke(command[0], str(cfg), *command[1:])
    assert code == 2, err
    assert f"{cfg}: {field}: " in err, err
    assert not out.exists()  # nothing was run, trained or labelled


def test_icl_model_override_is_checked_too(tmp_path: Path) -> None:
    cfg = write(tmp_path, w2sg_yaml("embedded/tiny-gpt2").replace("OUT", str(tmp_path / "out")))
    code, _, err = invoke("icl", str(cfg), "--model", "embedded/smolm2")
    assert code == 2 and "--model: unknown embedded model 'embedded/smolm2'" in err
    assert not (tmp_path / "out").exists()


def test_judge_train_checks_base_before_debating(tmp_path: Path) -> None:
    # The config's judge is what `judge train` makes: a judge not trained yet is fine there.
    cfg = write(tmp_path, f"protocol: consultancy\ndebater: scripted\njudge: classifier/{tmp_path / 'j'}\n")
    code, _, err = invoke(
        "judge", "train", str(cfg), "--out", str(tmp_path / "j"), "--base", "embedded/minlm"
    )
    assert code == 2 and "--base: unknown embedded model 'embedded/minlm'" in err
    assert not (tmp_path / "j").exists()


def test_graph_needs_no_trained_judge(tmp_path: Path) -> None:
    cfg = write(tmp_path, f"protocol: blind\njudge: classifier/{tmp_path / 'not-yet'}\njudge_kind: trained\n")
    code, _, err = invoke("graph", str(cfg), "--out", str(tmp_path / "g"))
    assert code == 0, err


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"name": "embedded/smolm2"}, "unknown embedded model 'embedded/smolm2'; choose one of smollm2"),
        ({"name": "embedded/minilm"}, "unknown embedded model"),  # an encoder, not a chat model
        ({"name": "hf/"}, "needs a path or id"),
        ({"name": "hf/./checkpoints/nope"}, "neither an existing directory"),
        ({"name": "classifier/no/such/judge"}, "no such directory 'no/such/judge'"),
        ({"name": "scripted", "scripted": {"table": "/no/such/table.jsonl"}}, "no such file"),
    ],
)
def test_model_spec_problems_name_the_field(tmp_path: Path, spec: dict, problem: str) -> None:
    from oversight.experiments.config import ExperimentConfig

    cfg = ExperimentConfig.model_validate({"models": {"m": spec}})
    with pytest.raises(ConfigError, match=re.escape("x.yaml: models.m.")) as err:
        check_config_models(cfg, "x.yaml")
    assert problem in str(err.value)


def test_fine_model_names_pass(tmp_path: Path) -> None:
    from oversight.experiments.config import ExperimentConfig

    (tmp_path / "judge").mkdir()
    cfg = ExperimentConfig.model_validate(
        {
            "models": {
                "a": {"name": "embedded/tiny-gpt2"},
                "b": {"name": f"hf/{tmp_path}"},
                "c": {"name": f"classifier/{tmp_path / 'judge'}"},
                "d": {"name": "openai/gpt-4o-mini@http://127.0.0.1:1/v1"},
                "e": {"name": "scripted/x"},
                "f": {"name": "extractive"},
            }
        }
    )
    check_config_models(cfg, "x.yaml")


def test_hub_ids_offline_must_be_in_the_local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from w2sg.experiment import W2SGConfig

    cfg = W2SGConfig.model_validate(
        {
            "weak": {"kind": "seq_cls", "path": "embedded/minilm"},
            "strong": {"kind": "lm_head", "path": "org/some-model"},
        }
    )
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ConfigError, match=r"x.yaml: strong.path: hub model 'org/some-model' is not in the local"
    ):
        check_config_models(cfg, "x.yaml")
    (tmp_path / "hub" / "models--org--some-model" / "snapshots" / "abc123").mkdir(parents=True)
    check_config_models(cfg, "x.yaml")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # online, a plausible id is left to the download
    check_config_models(cfg.model_copy(update={"strong": cfg.strong.model_copy(update={"path": "o/n"})}), "x")
    bare = cfg.strong.model_copy(update={"path": "gpt2"})  # neither a folder nor org/name
    with pytest.raises(ConfigError, match=re.escape("strong.path: 'gpt2' is neither an existing directory")):
        check_config_models(cfg.model_copy(update={"strong": bare}), "x")


def test_run_config_graph_names_may_be_keys_or_trained() -> None:
    from oversight.experiments.run.config import RunConfig

    base = {
        "models": {"reader": {"name": "extractive"}},
        "weak": {"kind": "features", "path": "embedded/tiny-gpt2"},
        "strong": {"kind": "features", "path": "embedded/tiny-gpt2"},
        "judge_training": {"base": "embedded/minilm"},
    }
    graph = {"kind": "debate", "protocol": "consultancy", "debater": "reader", "judge": "trained"}
    check_config_models(RunConfig.model_validate({**base, "protocols": {"c": graph}}), "r.yaml")
    bad = RunConfig.model_validate(
        {**base, "protocols": {"c": graph}, "judge_training": {"base": "embedded/x"}}
    )
    with pytest.raises(
        ConfigError, match=re.escape("r.yaml: judge_training.base: unknown embedded model 'embedded/x'")
    ):
        check_config_models(bad, "r.yaml")
    typo = {"kind": "debate", "protocol": "consultancy", "debater": "reader", "judge": "embedded/smolm2"}
    with pytest.raises(ConfigError, match=re.escape("protocols.c.judge: unknown embedded model")):
        check_config_models(RunConfig.model_validate({**base, "protocols": {"c": typo}}), "r.yaml")


def test_every_problem_is_listed_each_on_its_own_line() -> None:
    from w2sg.experiment import W2SGConfig

    cfg = W2SGConfig.model_validate(
        {"weak": {"kind": "seq_cls", "path": "embedded/mini"}, "strong": {"kind": "lm_head", "path": "x"}}
    )
    with pytest.raises(ConfigError) as err:
        check_config_models(cfg, "c.yaml")
    lines = str(err.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["weak.path", "strong.path"]
    assert all(line.startswith("c.yaml: ") for line in lines)
