"""`w2sg debaters train` (issue 31): preference pairs from best-of-N debates, DPO rounds with LoRA,
each round's model loadable by name, resume after a kill. Fast: tiny-gpt2 debates, a scripted
judge whose p(side) depends on the judge prompt's length (so candidates differ in score)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError

from agents import get_model, register_provider
from agents.backends.hf import hf_source
from agents.backends.scripted import ScriptedBackend
from agents.config import ModelSpec
from agents.types import Message
from oversight.experiments.debaters import runner
from oversight.experiments.debaters.config import DebaterTrainConfig, DPOSettings
from oversight.experiments.debaters.dpo import Pair, train_dpo

pytest.importorskip("trl")


def _probs(messages: Sequence[Message], choices: Sequence[str]) -> dict[str, float]:
    n = len(messages[-1].content) % 7
    return {"Yes": 0.2 + n / 10, "No": 0.8 - n / 10}


register_provider("lenjudge", lambda spec: ScriptedBackend(spec.name, probs_fn=_probs))

TINY = {
    "debater": "embedded/tiny-gpt2",
    "judge": "lenjudge/judge",
    "questions": 1,
    "best_of_n": 3,
    "graph": {"max_tokens": 12, "word_limit": 20},
    "dpo": {"steps": 2, "device": "cpu", "max_length": 384, "lr": 1e-3},
}


def config(tmp: Path, **fields: Any) -> DebaterTrainConfig:
    return DebaterTrainConfig.model_validate({**TINY, "out_dir": tmp, **fields})


def pairs_for(cfg: DebaterTrainConfig) -> list[Pair]:
    rows = runner.round_rows(cfg)["r1"]
    spec = cfg.debate(cfg.debater, 1)
    return asyncio.run(runner.collect_pairs(spec, cfg.models, rows, cfg.concurrency))[0]


def test_pairs_are_deterministic_per_seed(tmp_path: Path) -> None:
    first, again = pairs_for(config(tmp_path)), pairs_for(config(tmp_path))
    assert first and first == again
    assert all(p.chosen_p > p.rejected_p and p.chosen != p.rejected for p in first)
    assert pairs_for(config(tmp_path, seed=1)) != first


FIXED = [
    Pair(row=f"r{i}", side="correct", prompt=f"Argue case {i}.", chosen="It is right, the passage says so.",
         rejected="No.", chosen_p=0.9, rejected_p=0.1)
    for i in range(4)
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dpo")
    settings = DPOSettings(steps=6, lr=1e-2, device="cpu", max_length=64, batch_size=2)
    figures = train_dpo(hf_source("embedded/tiny-gpt2"), FIXED, settings, out, "r1", seed=0)
    (out / "figures.json").write_text(figures.model_dump_json())
    return out


def test_dpo_steps_lower_the_loss(trained: Path) -> None:
    from oversight.experiments.debaters.results import DPOFigures

    f = DPOFigures.model_validate_json((trained / "figures.json").read_text())
    assert f.loss_first == pytest.approx(0.6931, abs=1e-3)  # log 2: the policy starts as the reference
    assert f.loss_last < f.loss_first - 0.02 and f.margin_last > 0 and f.seconds_per_step > 0


def test_adapter_saves_reloads_and_changes_outputs(trained: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = hf_source("embedded/tiny-gpt2")
    ids = AutoTokenizer.from_pretrained(src)("It is right", return_tensors="pt")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(src).eval()
    with torch.no_grad():
        before = base(ids).logits
        adapted = PeftModel.from_pretrained(base, trained / "adapter-r1").eval()
        after = adapted(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(trained / "model-r1").eval()(ids).logits
    assert not torch.allclose(before, after)
    assert torch.allclose(after, merged, atol=1e-4)  # the merged copy is the adapted model


def test_merged_model_loads_by_name(trained: Path) -> None:
    async def say() -> str:
        m = get_model(ModelSpec(name=f"hf/{trained / 'model-r1'}", hf={"device": "cpu"}))
        async with m:
            return (await m.generate("Hello", max_tokens=4, seed=0)).text

    assert isinstance(asyncio.run(say()), str)


def test_a_round_runs_and_resumes_without_redoing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path)
    result, run_dir, loaded = runner.train_debaters(cfg)
    assert not loaded and len(result.rounds) == 1
    r = result.rounds[0]
    assert r.pairs > 0 and r.dpo.steps == 2 and Path(r.model.removeprefix("hf/")).is_dir()
    for name in ("pairs-r1.jsonl", "round-r1.json", "adapter-r1", "model-r1", "results.md"):
        assert (run_dir / name).exists(), name

    def no(*a: object, **k: object) -> None:
        raise AssertionError("a finished step ran again")

    # Killed after round 1 of 2: round 1 is skipped, round 2 debates from round 1's model.
    monkeypatch.setattr(runner, "train_dpo", no)
    (run_dir / "results.json").unlink()
    assert runner.train_debaters(cfg)[0].rounds == result.rounds
    # Killed during DPO: the pairs are read back, no debate runs again.
    monkeypatch.undo()
    monkeypatch.setattr(runner, "collect_pairs", no)
    (run_dir / "round-r1.json").unlink()
    (run_dir / "results.json").unlink()
    shutil.rmtree(run_dir / "model-r1")
    again = runner.train_debaters(cfg)[0].rounds[0]
    assert again.pairs == r.pairs and again.debate_seconds is None and (run_dir / "model-r1").is_dir()


def test_dpo_curves_reach_tensorboard_without_changing_the_run(tmp_path: Path) -> None:
    """`tracking.tensorboard`: every DPO step's loss and reward margin, and each round's figures."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = config(tmp_path, tracking={"tensorboard": True})
    assert cfg.run_id("d") == config(tmp_path).run_id("d")
    result, run_dir, _ = runner.train_debaters(cfg)
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"dpo_r1/loss", "dpo_r1/rewards/margins", "rounds/pairs"} <= tags
    assert len(events.Scalars("dpo_r1/loss")) == cfg.dpo.steps
    assert events.Scalars("rounds/pairs")[0].value == result.rounds[0].pairs


def test_too_short_max_length_is_a_clear_error(tmp_path: Path) -> None:
    settings = DPOSettings(steps=1, device="cpu", max_length=16)
    long = FIXED[0].model_copy(update={"prompt": "Argue this case well. " * 10})
    with pytest.raises(ValueError, match=r"dpo\.max_length: every pair's prompt"):
        train_dpo(hf_source("embedded/tiny-gpt2"), [long], settings, tmp_path, "r1", seed=0)


def test_round_two_debates_with_round_one_model(tmp_path: Path) -> None:
    cfg = config(tmp_path, rounds=2)
    assert cfg.debater_after(tmp_path, 0).name == "embedded/tiny-gpt2"
    assert cfg.debater_after(tmp_path, 1).name == f"hf/{tmp_path.resolve()}/model-r1"


def test_evaluation_reports_every_round_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`w2sg debaters evaluate`: r0 and r1 in cross-play and self-play on held-out questions, and as
    label sources of a `w2sg run` student; a rerun loads it without a debate."""
    from oversight.experiments.debaters import evaluate

    tiny = {"kind": "features", "path": "embedded/tiny-gpt2", "max_length": 48}
    fast = {"lr": 1e-3, "epochs": 2, "batch_size": 16, "eval_every": 4, "device": "cpu"}
    student = {
        "sizes": {"judge": 12, "calib": 8, "strong": 20, "val": 6, "test": 20},
        **{"weak": tiny, "weak_train": fast, "strong": tiny, "strong_train": fast},
        **{"n_boot": 100, "cache_dir": str(tmp_path / "cache")},
    }
    cfg = config(tmp_path, evaluation={"questions": 3, "n_boot": 50, "student": student})
    ev, trained, out, loaded = evaluate.evaluate_debaters(cfg)
    assert not loaded and [r.round for r in ev.rounds] == [0, 1] and trained.rounds[0].pairs > 0
    assert ev.matches == 2 * 2 * 6  # ordered pairs x speaking positions x rows
    r0, r1 = ev.rounds
    assert r0.help is None and r1.help is not None and r1.net is not None
    assert r1.net.value == pytest.approx(r1.help.value - r1.hurt.value)  # type: ignore[union-attr]
    assert r1.model == f"hf/{(out.parent / 'model-r1').resolve()}"
    assert r0.student is not None and r1.labels is not None and ev.ceiling is not None
    # The tournament's questions: none a round debated.
    rounds = {e.qid for rows in runner.round_rows(cfg).values() for e in rows}
    held = {e.qid for e in evaluate.held_out(cfg, rounds)}
    assert len(held) == 3 and not held & rounds and ev.overlap["run graph splits ∩ tournament"] >= 0
    report = (out / "results.md").read_text()
    assert report.count("| r1 |") == 3 and report.count("| r0 |") == 2  # r0 has no row against itself
    assert (out / "accuracy-vs-rating.png").stat().st_size > 0

    def no(*a: object, **k: object) -> None:
        raise AssertionError("a finished evaluation ran again")

    monkeypatch.setattr(evaluate, "run_tournament", no)
    monkeypatch.setattr(evaluate, "run_pipeline", no)
    again, _, _, loaded = evaluate.evaluate_debaters(cfg)
    assert loaded and again.model_dump_json() == ev.model_dump_json()  # json: a nan PGR equals itself


def test_the_evaluation_leaves_the_run_id_alone(tmp_path: Path) -> None:
    assert config(tmp_path).run_id("d") == config(tmp_path, evaluation={"questions": 7}).run_id("d")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"evaluation": {"student": {"protocols": {}}}}, "evaluation: student: protocols come from"),
        ({"graph": {"protocol": "consultancy"}}, "evaluation: graph.protocol: cross-play needs"),
        ({"debater": "openai/gpt-4o"}, "debater: DPO trains local weights"),
        ({"graph": {"judge": "x"}}, "graph: judge are set by each round"),
        ({"dpo": {"beta": 0}}, "dpo.beta"),
        ({"dpo": {"stpes": 3}}, "dpo.stpes"),
        ({"judge": "nokey"}, "judge: 'nokey' is neither a key of `models:`"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        config(tmp_path, **fields)


@pytest.mark.slow
def test_one_smollm2_round(tmp_path: Path) -> None:
    """One round with SmolLM2-135M debating and judging a SciQ question, LoRA DPO on its pairs."""
    cfg = config(
        tmp_path,
        debater="embedded/smollm2",
        judge="embedded/smollm2",
        best_of_n=2,
        graph={"max_tokens": 12, "word_limit": 10},
        dpo={"steps": 1, "device": "cpu", "max_length": 384},
    )
    r = runner.train_debaters(cfg)[0].rounds[0]
    assert r.pairs > 0 and r.dpo.seconds_per_step > 0
