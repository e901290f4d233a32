"""Real OpenAI-compatible servers in the loop (issue 18): `transformers serve` and llama.cpp's
server (llama-cpp-python) on 127.0.0.1, each serving the embedded SmolLM2, driven through the
commands a user runs: `w2sg models list/check`, `w2sg debate` with generative debaters and a
prompted judge, `w2sg label`, a tiny `w2sg run`, and (llama.cpp, the faster) the shipped vLLM run
config and the ICL `--model` example with only addresses and sizes overridden.

Slow: each server is started once per module. CI installs both (`make test`) and sets
W2SG_REQUIRE_SERVERS=1, so a missing server fails instead of skipping."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli import ROOT
from cli import w2sg as run_w2sg

from agents import ModelSpec, get_model
from agents.testing.servers import KINDS, Served, missing, serve

pytestmark = pytest.mark.slow

#: the scoring method each server's choice probabilities come from (`auto`)
METHOD = {"transformers": "systemone", "llama.cpp": "logprobs"}
Q, A = "What element is present in all organic molecules?", "carbon"
CONTEXT = "Carbon is the element at the centre of organic chemistry: every organic molecule contains carbon."


@pytest.fixture(scope="module", params=KINDS)
def served(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    why = missing(request.param)
    if why is not None:
        if os.environ.get("W2SG_REQUIRE_SERVERS") == "1":
            pytest.fail(f"W2SG_REQUIRE_SERVERS=1 but {why}")
        pytest.skip(why)
    with serve(request.param) as s:
        yield s


def spec(s: Served, **fields: Any) -> dict[str, Any]:
    """The served model with generous timeouts: a 2-core server answering several requests at once
    is slow, and that is not what these tests are about."""
    openai = {"timeout_s": 300, **fields.pop("openai", {})}
    return s.spec(retry={"max_attempts": 3, "initial_s": 0.5}, openai=openai, **fields)


def w2sg(*args: str) -> Any:
    """A command against a 2-core server that queues requests one by one (transformers serve) and
    shares the machine with the test run: minutes, not seconds."""
    return run_w2sg(*args, timeout=1200)


def write(tmp_path: Path, name: str, cfg: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_models_list_and_check(served: Served, tmp_path: Path) -> None:
    listed = w2sg("models", "list", served.url)
    assert listed.returncode == 0, listed.stderr
    assert served.model in listed.stdout.splitlines()
    cfg = write(tmp_path, "models.yaml", {"models": {"smol": spec(served)}})
    out = w2sg("models", "check", str(cfg), "--max-tokens", "8")
    assert out.returncode == 0, out.stderr
    assert re.search(rf"smol .*\b{METHOD[served.kind]}\b", out.stdout), out.stdout


async def test_choice_probabilities_are_exact_where_the_server_allows(served: Served) -> None:
    prompt = f"Question: {Q}\nAnswer: {A}\nIs the answer correct? Reply Yes or No."
    got = {}
    methods = ["logprobs", "echo", "completion_logprobs"] if served.kind == "llama.cpp" else ["systemone"]
    for method in methods:
        async with get_model(ModelSpec.model_validate(spec(served, openai={"choice_method": method}))) as m:
            p = await m.choice_probs(prompt, ["Yes", "No"])
        assert p.method == method
        got[method] = p["Yes"]
    assert all(0.0 < v < 1.0 for v in got.values())  # a probability, not a sampled 0 or 1
    # Three routes to the same next-token distribution: the chat endpoint's logprobs, the prompt's
    # echo and a one-token completion (the chat template rendered here) agree.
    assert max(got.values()) - min(got.values()) < 2e-3, got


def test_debate_with_generative_debaters_and_a_prompted_judge(served: Served, tmp_path: Path) -> None:
    cfg = {
        "kind": "debate",
        "protocol": "sequential",
        "rounds": 1,
        "max_tokens": 32,
        "word_limit": 20,
        "debater": spec(served),  # inline specs: timeouts and retries set where the model is named
        "judge": spec(served),
    }
    path = write(tmp_path, "debate.yaml", cfg)
    out = w2sg("debate", str(path), "-q", Q, "-a", A, "--context", CONTEXT)
    assert out.returncode == 0, out.stderr
    turns = re.findall(r"round 1 · debater_(correct|incorrect)", out.stdout)
    assert turns == ["correct", "incorrect"], out.stdout
    assert re.search(rf"verdict.* p\(true\) = 0\.\d+ \({METHOD[served.kind]};", out.stdout), out.stdout


def test_label_with_generative_debaters_and_a_prompted_judge(served: Served, tmp_path: Path) -> None:
    store = tmp_path / "labels.sqlite"
    cfg = {
        "split": "test",
        "questions": 2,
        "concurrency": 4,
        "store": str(store),
        "models": {"smol": spec(served)},
        "graph": {
            "kind": "debate",
            "protocol": "sequential",
            "rounds": 1,
            "max_tokens": 32,
            "word_limit": 20,
            "debater": "smol",
            "judge": "smol",
        },
    }
    out = w2sg("label", str(write(tmp_path, "label.yaml", cfg)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 labelled, 0 failed" in out.stdout
    assert re.search(r"debater: \d+ calls .* 0 failed", out.stdout), out.stdout
    with sqlite3.connect(store) as db:
        records = [json.loads(r[0]) for r in db.execute("SELECT record FROM labels WHERE status = 'ok'")]
    assert len(records) == 4
    assert {r["verdict"]["method"] for r in records} == {METHOD[served.kind]}
    for r in records:  # both debaters spoke, in their own words
        texts = [t["text"] for t in r["transcript"]]
        assert len(texts) == 2 and all(texts)


TINY = {"kind": "features", "path": "embedded/tiny-gpt2", "max_length": 48}
FAST = {"lr": 1.0e-3, "epochs": 2, "batch_size": 16, "eval_every": 4, "device": "cpu"}


def test_a_tiny_run_end_to_end(served: Served, tmp_path: Path) -> None:
    """A prompted judge alone (blind) and judging a consultant it hears (both the served model),
    next to a weak teacher; students on tiny features."""
    cfg = {
        "name": "served",
        "sizes": {"judge": 8, "calib": 4, "strong": 4, "val": 2, "test": 10},
        "models": {"smol": spec(served)},
        "protocols": {
            "blind": {"kind": "debate", "protocol": "blind", "judge": "smol"},
            "consultancy": {
                "kind": "debate",
                "protocol": "consultancy",
                "rounds": 1,
                "max_tokens": 16,
                "word_limit": 12,
                "debater": "smol",
                "judge": "smol",
            },
        },
        "weak": TINY,
        "weak_train": FAST,
        "strong": {**TINY, "pooling": "mean"},
        "strong_train": FAST,
        "n_boot": 100,
        "concurrency": 8,
        "out_dir": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
    }
    out = w2sg("run", str(write(tmp_path, "run.yaml", cfg)))
    assert out.returncode == 0, out.stdout + out.stderr
    report = next((tmp_path / "runs").glob("served-*/results.md")).read_text()
    assert f"| consultancy | {METHOD[served.kind]} 100% | 0 |" in report, report
    assert re.search(r"\| consultancy \| oversight \| .*\| [+-]0\.\d+ \[", report)  # paired vs blind


def test_the_shipped_vllm_config_runs_against_a_local_server(served: Served, tmp_path: Path) -> None:
    """configs/run-vllm.yaml as shipped, with only the servers' addresses, the sizes and the
    (offline) strong model changed: what a user with vLLM changes is the addresses."""
    if served.kind != "llama.cpp":
        pytest.skip("one server is enough to show the config runs; llama.cpp is the faster here")
    short = {"rounds": 1, "max_tokens": 8, "word_limit": 6}
    sets = [
        f"models.strong.openai.base_urls=[{served.url}]",
        f"models.strong.openai.model={served.model}",
        f"models.weak-judge.name=openai/weak@{served.url}",
        f"models.weak-judge.openai.model={served.model}",
        f"models.strong.cache.path={tmp_path / 'strong.sqlite'}",  # not the repo's runs/cache
        f"models.weak-judge.cache.path={tmp_path / 'weak-judge.sqlite'}",
        "sizes={judge: 4, calib: 2, strong: 2, val: 2, test: 10}",
        *(
            f"protocols.{p}.{k}={v}"
            for p in ("consultancy", "debate", "debate-prompted")
            for k, v in short.items()
        ),
        "protocols.interaction.max_tokens=8",
        "judge_training.max_length=96",
        "judge_training.train.epochs=1",
        "judge_training.train.device=cpu",
        f"strong={json.dumps({**TINY, 'pooling': 'mean'})}",
        f"weak={json.dumps(TINY)}",
        f"weak_train={json.dumps(FAST)}",
        f"strong_train={json.dumps(FAST)}",
        "ensembles=[]",
        "n_boot=100",
        "concurrency=8",
        f"out_dir={tmp_path / 'runs'}",
        f"cache_dir={tmp_path / 'cache'}",
    ]
    args = [a for s in sets for a in ("--set", s)]
    out = w2sg("run", str(ROOT / "configs" / "run-vllm.yaml"), *args)
    assert out.returncode == 0, out.stdout + out.stderr
    report = next((tmp_path / "runs").glob("run-vllm-*/results.md")).read_text()
    for source in ("blind-prompted", "debate-prompted", "consultancy", "interaction"):
        assert f"| {source} | oversight |" in report


def test_the_icl_model_example_runs_against_a_local_server(served: Served, tmp_path: Path) -> None:
    if served.kind != "llama.cpp":
        pytest.skip("one server is enough to show the example runs; llama.cpp is the faster here")
    sets = {
        "sizes": {"weak": 40, "strong": 40, "val": 10, "test": 20},
        "weak": TINY,
        "weak_train": FAST,
        "strong": {**TINY, "pooling": "mean"},
        "strong_train": FAST,
        "ensembles": [],  # no bagging or boosting here, so the sources they make go too
        "label_sources": ["weak"],
        "icl": {
            "k": 2,
            "selectors": ["random"],
            "label_sources": ["weak"],
            "test_questions": 6,
            "zero_shot": False,
        },
        "out_dir": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
    }
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    # The spec form: with the chat template, choices outside SmolLM2's top first tokens ("1"/"0"
    # after a few demos) are scored by echo instead of failing.
    model = json.dumps(spec(served))
    out = w2sg("icl", str(ROOT / "configs" / "w2sg-ensembles.yaml"), "--model", model, *args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "random" in out.stdout
