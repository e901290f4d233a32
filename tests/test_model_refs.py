"""Model specs wherever a model is named (issue 18): a graph role takes a model string, a key of
`models:`, or an inline spec; an inline spec's errors name its field; how a model is called
(retries, timeouts, addresses, concurrency) changes no label identity, what it answers does."""

from __future__ import annotations

from pathlib import Path

import yaml
from cli import w2sg

from agents.config import resolve_spec
from oversight.labelling.label import LabelConfig


def label_config(judge: object, **over: object) -> LabelConfig:
    return LabelConfig.model_validate(
        {"graph": {"kind": "debate", "protocol": "blind", "judge": judge}, "split": "test", **over}
    )


def test_a_role_takes_a_name_a_key_or_an_inline_spec() -> None:
    inline = {"name": "openai/smol", "openai": {"model": "/a/path@x", "timeout_s": 300}}
    cfg = label_config(inline)
    spec = cfg.graph.specs(cfg.models)["judge"]
    assert spec.openai is not None and spec.openai.model == "/a/path@x" and spec.openai.timeout_s == 300
    keyed = label_config("j", models={"j": {"name": "scripted/j", "retry": {"max_attempts": 2}}})
    assert keyed.graph.specs(keyed.models)["judge"].retry.max_attempts == 2
    assert resolve_spec("scripted/plain").name == "scripted/plain"
    assert cfg.graph.model_refs() == {}  # an inline spec is checked as a spec, not as a name


def test_how_a_model_is_called_changes_no_label_identity() -> None:
    base = {"name": "openai/smol", "openai": {"model": "smollm2", "base_urls": ["http://127.0.0.1:1/v1"]}}
    h = label_config(base).config_hash("data")
    calls = {
        **base,
        "retry": {"max_attempts": 9},
        "max_concurrency": 3,
        "adaptive_concurrency": False,
        "openai": {**base["openai"], "timeout_s": 999, "base_urls": ["http://127.0.0.1:2/v1"]},
    }
    assert label_config(calls).config_hash("data") == h
    for answers in ({"model": "other"}, {"choice_method": "sampled"}, {"fallback_samples": 4}):
        changed = {**base, "openai": {**base["openai"], **answers}}
        assert label_config(changed).config_hash("data") != h, answers
    # the same through `models:`
    keyed = label_config("m", models={"m": base}).config_hash("data")
    assert label_config("m", models={"m": calls}).config_hash("data") == keyed


def test_an_inline_spec_error_names_its_field(tmp_path: Path) -> None:
    cfg = {"split": "test", "graph": {"kind": "debate", "protocol": "blind", "judge": {}}}

    def run(judge: object) -> str:
        cfg["graph"]["judge"] = judge  # type: ignore[index]
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(cfg))
        out = w2sg("label", str(path))
        assert out.returncode == 2
        return out.stderr

    assert "graph.judge.openai.timeout_z: Extra inputs are not permitted (allowed here: api_key_env" in run(
        {"name": "openai/x", "openai": {"timeout_z": 1}}
    )
    assert "graph.judge: Value error, unknown provider 'opena'" in run({"name": "opena/x"})
    assert "graph.judge: a model string, a key of `models:`, or a model spec" in run(5)
