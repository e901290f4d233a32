"""Configs load from YAML with errors naming file and field; the CLI works end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli import SHIPPED_CONFIGS, config_class, w2sg

from agents import ConfigError, ModelSpec, load_config
from agents.testing import FakeServer
from oversight.experiments.config import ExperimentConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    kind = config_class(path)
    cfg = load_config(path, kind)
    assert cfg.models if kind is ExperimentConfig else cfg


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "models: {judge: {name: hf/x, max_concurrency: 0}}",
            r"models\.judge\.max_concurrency: Input should be greater",
        ),
        (
            "models: {judge: {name: hf/x, colour: red}}",
            r"models\.judge\.colour: Extra inputs are not permitted",
        ),
        ("models: {judge: {name: vllm/x}}", r"models\.judge: .*unknown provider 'vllm'.*expected one of"),
        ("models: {judge: {name: hf/x, openai: {}}}", r"options `openai` do not apply to a hf model"),
        ("models: {judge: {name: scripted, scripted: {rules: [{match: x}]}}}", r"rules\.0: .*needs `reply`"),
        ("models: [1, 2", r"not valid YAML"),
        ("- a\n- b", r"expected a mapping at the top level"),
    ],
)
def test_config_errors_name_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as err:
        load_config(write(tmp_path, text), ExperimentConfig)
    assert str(tmp_path / "cfg.yaml") in str(err.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml", ExperimentConfig)


def test_model_spec_round_trips_through_yaml(tmp_path: Path) -> None:
    import yaml

    spec = ModelSpec(
        name="openai/m@http://127.0.0.1:1/v1", rpm=60, openai={"base_urls": ["http://127.0.0.1:2/v1"]}
    )
    p = write(tmp_path, yaml.safe_dump({"models": {"m": spec.model_dump(mode="json")}}))
    assert load_config(p, ExperimentConfig).models["m"] == spec


def test_cli_help_for_every_command() -> None:
    for args in ([], ["models"], ["models", "check"], ["models", "list"], ["chat"]):
        out = w2sg(*args, "--help")
        assert out.returncode == 0, out.stderr
        assert "Usage" in out.stdout


def test_cli_models_check_against_local_server(tmp_path: Path) -> None:
    with FakeServer() as server:
        cfg = write(
            tmp_path,
            f"""
models:
  api: {{name: "openai/fake@{server.url}"}}
  rules: {{name: scripted/x, scripted: {{default_reply: "Yes indeed"}}}}
""",
        )
        out = w2sg("models", "check", str(cfg))
        assert out.returncode == 0, out.stderr
        assert server.stats()["requests"] == 2  # one generate, one choice_probs
    assert "api" in out.stdout and "logprobs" in out.stdout and "tok/s" in out.stdout
    assert "Yes indeed" in out.stdout


def test_cli_reports_a_failing_model_and_exits_nonzero(tmp_path: Path) -> None:
    with FakeServer(faults=["401"]) as server:
        cfg = write(tmp_path, f'models: {{api: {{name: "openai/fake@{server.url}"}}}}')
        out = w2sg("models", "check", str(cfg))
    assert out.returncode == 1
    assert "HTTP 401" in out.stderr


def test_cli_bad_config_exits_2_with_the_field(tmp_path: Path) -> None:
    cfg = write(tmp_path, "models: {judge: {name: hf/x, colour: red}}")
    out = w2sg("models", "check", str(cfg))
    assert out.returncode == 2
    assert "models.judge.colour" in out.stderr and str(cfg) in out.stderr


def test_cli_chat_with_choices() -> None:
    out = w2sg("chat", "scripted", "-m", "hello", "--choices", "OK,NO")
    assert out.returncode == 0, out.stderr
    assert "scripted: OK" in out.stdout and "OK=1.000" in out.stdout


def test_cli_chat_shows_model_text_as_written(tmp_path: Path) -> None:
    # Rich markup in a reply or a message is text, not styling (nor an error for a stray tag).
    cfg = write(tmp_path, "models: {m: {name: scripted, scripted: {default_reply: '[bold]x[/bold] [/red]'}}}")
    out = w2sg("chat", "m", "--config", str(cfg), "-m", "[i]hi")
    assert out.returncode == 0, out.stderr
    assert "scripted: [bold]x[/bold] [/red]" in out.stdout and "user: [i]hi" in out.stdout


def test_import_agents_does_not_import_torch() -> None:
    code = (
        "import sys, agents, graphs, oversight.cli; "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_labelling_with_an_api_model_never_imports_torch(tmp_path: Path) -> None:
    """`w2sg label` against an OpenAI-compatible server, in a fresh process under -X importtime:
    neither torch nor transformers is imported on the whole path (config, data, graph, store,
    metrics, summary)."""
    with FakeServer() as server:
        cfg = write(
            tmp_path,
            f"""
split: test
questions: 3
store: {tmp_path / "l.sqlite"}
models:
  judge: {{name: "openai/fake@{server.url}"}}
graph: {{kind: debate, protocol: blind, judge: judge}}
""",
        )
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "oversight.cli", "label", str(cfg)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "6 labelled, 0 failed" in out.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "w2sg.metrics" in imported and "oversight.labelling.label" in imported  # the trace is real
    assert not {m for m in imported if m.split(".")[0] in ("torch", "transformers")}


def test_dependencies_point_one_way() -> None:
    """agents ← graphs ← oversight → w2sg; agents and w2sg never import each other."""
    import ast

    forbidden = {
        "agents": {"graphs", "oversight", "w2sg"},
        "graphs": {"oversight", "w2sg"},
        "w2sg": {"agents", "graphs", "oversight"},
    }
    for package, banned in forbidden.items():
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                )
                for n in names:
                    assert n.split(".")[0] not in banned, f"{path.relative_to(ROOT)} imports {n}"


def _project_imports() -> dict[str, set[str]]:
    """Module → the project modules it imports anywhere in its file (top level, in functions, or
    under TYPE_CHECKING: a cycle hidden in a lazy import is still a cycle)."""
    import ast

    paths = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for pkg in ("agents", "graphs", "oversight", "w2sg")
        for p in (ROOT / pkg).rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for mod, path in paths.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            out |= {t for t in targets if t in paths and t != mod and not mod.startswith(t + ".")}
        # A package's face (__init__) re-exports its modules; an edge into it is not a cycle edge.
        graph[mod] = {t for t in out if paths[t].name != "__init__.py"}
    return graph


def test_the_project_has_no_import_cycles() -> None:
    graph = _project_imports()
    assert "w2sg.data" in graph["w2sg.experiment"] and "agents.config" in graph["agents.model"]  # it reads
    state: dict[str, int] = {}

    def visit(mod: str, stack: list[str]) -> None:
        state[mod] = 1
        for nxt in sorted(graph[mod]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*stack[stack.index(nxt) :], nxt])
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])


def test_cli_train_small_experiment(tmp_path: Path) -> None:
    cfg = write(
        tmp_path,
        f"""
name: cli
sizes: {{weak: 15, strong: 30, val: 10, test: 20}}
weak: {{kind: features, path: embedded/tiny-gpt2, max_length: 48}}
strong: {{kind: features, path: embedded/tiny-gpt2, max_length: 48, pooling: mean}}
strong_train: {{lr: 1.0e-3, epochs: 2, eval_every: 4}}
label_sources: [weak, weak_p_true_with_support]
losses: [logconf]
n_boot: 200
out_dir: {tmp_path / "runs"}
cache_dir: {tmp_path / "cache"}
icl: {{model: scripted, k: 2, selectors: [random, bm25], label_sources: [gold, weak], test_questions: 5}}
""",
    )
    out = w2sg("train", str(cfg), "--device", "cpu")
    assert out.returncode == 0, out.stderr
    assert "weak_p_true_with_support" in out.stdout and "logconf" in out.stdout
    (run,) = (tmp_path / "runs").glob("cli-*/")
    assert (run / "results.png").exists()

    out = w2sg("compare", str(run), "student__weak__logconf", "ceiling", "--n-boot", "500")
    assert out.returncode == 0, out.stderr
    assert re.search(r"difference [+-][0-9.]+ \[[+-][0-9.]+, [+-][0-9.]+\]", out.stdout), out.stdout
    assert re.search(r"permutation p = [0-9.]+", out.stdout), out.stdout
    out = w2sg("compare", str(run), "student__nope", "ceiling")
    assert out.returncode != 0 and "no column 'student__nope'" in out.stderr

    # ICL through the CLI with the scripted backend: it reuses the finished run's weak labels.
    out = w2sg("icl", str(cfg), "--device", "cpu")
    assert out.returncode == 0, out.stderr
    assert "| bm25 | no |" in out.stdout and "zero-shot" in out.stdout
    assert len(list(run.glob("icl-*/results.json"))) == 1
    # --model takes a spec mapping in YAML too (a served model's id, URL and template); its errors
    # name --model and the field.
    spec = "{name: scripted, scripted: {default_reply: '0'}}"
    out = w2sg("icl", str(cfg), "--device", "cpu", "--model", spec)
    assert out.returncode == 0, out.stderr
    assert len(list(run.glob("icl-*/results.json"))) == 2
    out = w2sg("icl", str(cfg), "--model", "{name: scripted, colour: red}")
    assert out.returncode == 2 and "--model" in out.stderr and "colour" in out.stderr, out.stderr
    out = w2sg("icl", str(cfg), "--model", "{name: [")
    assert out.returncode == 2 and "--model: not a YAML mapping" in out.stderr, out.stderr

    out = w2sg("ensemble", str(cfg))
    assert out.returncode != 0 and "ensembles" in out.stderr


def test_cli_train_bad_config_names_the_field(tmp_path: Path) -> None:
    cfg = write(tmp_path, "weak: {kind: seq_cls, path: x}\nstrong: {kind: bogus, path: y}\n")
    out = w2sg("train", str(cfg))
    assert out.returncode == 2
    assert "strong.kind" in out.stderr


def test_cli_debate_and_graph(tmp_path: Path) -> None:
    cfg = write(tmp_path, "protocol: simultaneous\nrounds: 2\ndebater: scripted\njudge: scripted\n")
    out = w2sg("debate", str(cfg), "-q", "What gas do plants take in?", "-a", "oxygen", "--context", "CO2.")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("round 1 ·") == 2 and out.stdout.count("round 2 ·") == 2
    assert "verdict p(true) = 0.500" in out.stdout
    out = w2sg("debate", str(cfg), "-q", "q", "-a", "a", "--protocol", "blind")
    assert out.returncode == 0 and "round 1" not in out.stdout and "verdict" in out.stdout
    out = w2sg("debate", str(cfg), "-q", "q", "-a", "a", "--protocol", "shouting")
    assert out.returncode != 0 and "protocol" in out.stderr

    out = w2sg("graph", str(cfg), "--out", str(tmp_path / "g"))
    assert out.returncode == 0, out.stderr
    mmd = (tmp_path / "g.mmd").read_text()
    assert "debater_correct" in mmd and "end_round" in mmd and "judge" in mmd
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"

    bad = write(tmp_path, "protocol: debate\nrounds: 0\n")
    out = w2sg("graph", str(bad))
    assert out.returncode == 2 and "protocol" in out.stderr and "rounds" in out.stderr


def test_cli_judge_train_then_debate_with_it(tmp_path: Path) -> None:
    cfg = write(tmp_path, "protocol: consultancy\nrounds: 1\ndebater: scripted\njudge: scripted\n")
    judge_dir = tmp_path / "judge"
    out = w2sg("judge", "train", str(cfg), "--out", str(judge_dir), "--questions", "10", "--epochs", "1")
    assert out.returncode == 0, out.stderr
    assert re.search(r"held-out accuracy [01]\.\d+ on 4 rows", out.stdout), out.stdout
    assert (judge_dir / "judge.json").exists()
    trained = write(
        tmp_path,
        f"protocol: consultancy\ndebater: scripted\njudge: classifier/{judge_dir}\njudge_kind: trained\n",
    )
    out = w2sg("debate", str(trained), "-q", "What do plants absorb?", "-a", "light")
    assert out.returncode == 0, out.stderr
    assert "(classifier;" in out.stdout

    # Labelling with that judge leaves out the questions it was trained on.
    import json

    info = json.loads((judge_dir / "judge.json").read_text())
    assert len(info["qids"]) == 10 and info["max_length"] == 256
    label_cfg = write(
        tmp_path,
        f"questions: 5\nstore: {tmp_path / 'l.sqlite'}\n"
        "graph: {kind: debate, protocol: consultancy, debater: scripted, judge_kind: trained, "
        f"judge: 'classifier/{judge_dir}'}}\n",
    )
    out = w2sg("label", str(label_cfg))
    assert out.returncode == 0, out.stderr
    assert (
        "10 labelled" in out.stdout and "(20 rows left out: their questions trained the judge)" in out.stdout
    )
    import sqlite3

    from w2sg.datasets import load

    qid = {e.id: e.qid for e in load("sciq", "test")}
    with sqlite3.connect(tmp_path / "l.sqlite") as db:
        labelled = {qid[r[0]] for r in db.execute("SELECT example_id FROM labels")}
    assert labelled and not labelled & set(info["qids"])


def test_set_overrides_any_field_and_a_bad_one_names_the_key_and_the_allowed_fields(tmp_path: Path) -> None:
    label = write(
        tmp_path,
        f"""
split: test
questions: 5
store: {tmp_path / "s.sqlite"}
models:
  judge: {{name: scripted/j, scripted: {{rules: [{{match: '.*', probs: {{'Yes': 0.6, 'No': 0.4}}}}]}}}}
graph: {{kind: debate, protocol: blind, judge: judge}}
""",
    )
    out = w2sg("label", str(label), "--set", "questions=2", "--set", "concurrency=3")
    assert out.returncode == 0, out.stderr
    assert "4 labelled" in out.stdout  # 2 questions, not the file's 5
    bad = w2sg("label", str(label), "--set", "graph.rounds=zero")
    # The location reads as written: no union tag (`graph.debate.rounds`) in it.
    assert bad.returncode == 2 and "  graph.rounds: " in bad.stderr and "valid integer" in bad.stderr
    # An unknown key lists the fields allowed there, inside a graph kind and inside a dict of models.
    nested = w2sg("label", str(label), "--set", "graph.roundz=2", "--set", "models.judge.nope=1")
    assert nested.returncode == 2
    assert "  graph.roundz: Extra inputs are not permitted (allowed here: consultant_side," in nested.stderr
    assert (
        "  models.judge.nope: Extra inputs are not permitted (allowed here: adaptive_concurrency, cache,"
        in nested.stderr
    )
    typo = w2sg("train", "configs/w2sg-sciq.yaml", "--set", "sizes.weakk=3", "--set", f"out_dir={tmp_path}")
    assert typo.returncode == 2
    assert (
        "sizes.weakk: Extra inputs are not permitted (allowed here: dev, strong, test, val, weak)"
        in typo.stderr
    )
    assert "Traceback" not in typo.stderr and not list(tmp_path.glob("sciq-*"))
    shape = w2sg("label", str(label), "--set", "questions")
    assert shape.returncode == 2 and "expected key.path=value" in shape.stderr


def test_one_config_base() -> None:
    """`Config` (extra="forbid") is defined once for agents, graphs and oversight (agents.config),
    once for w2sg, which imports none of them (w2sg.config); no other class repeats the setting
    (frozen records have their own `ConfigDict(frozen=True, ...)`)."""
    files = [p for pkg in ("agents", "graphs", "oversight", "w2sg") for p in (ROOT / pkg).rglob("*.py")]
    where = {str(p.relative_to(ROOT)) for p in files if "class Config(BaseModel)" in p.read_text()}
    assert where == {"agents/config.py", "w2sg/config.py"}
    repeated = [
        str(p.relative_to(ROOT))
        for p in files
        if 'ConfigDict(extra="forbid")' in p.read_text() and str(p.relative_to(ROOT)) not in where
    ]
    assert not repeated, repeated


def test_every_experiment_has_one_root() -> None:
    """Every experiment's config derives from `w2sg.config.Experiment` (name, out_dir), so a
    shared setting is declared once."""
    from oversight.experiments.grid.config import GridConfig
    from oversight.experiments.ladder.config import LadderConfig
    from oversight.experiments.run.config import RunConfig
    from oversight.experiments.tournament.config import TournamentConfig
    from w2sg.config import Experiment
    from w2sg.experiment import W2SGConfig

    for kind in (GridConfig, LadderConfig, RunConfig, TournamentConfig, W2SGConfig):
        assert issubclass(kind, Experiment), kind
        assert kind.model_fields["out_dir"].annotation is Path, kind
