"""A trained judge learns to read the transcript, is saved as `classifier/<dir>`, and judges a
debate through the graph like any model."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from agents import get_model, wrap
from agents.backends.classifier import PAIR_SEP
from agents.backends.scripted import ScriptedBackend
from agents.errors import FatalModelError
from agents.names import resolve_model_path
from agents.types import GenerateParams, Message
from graphs.debate import DebateConfig, build_debate_graph, run_debate
from oversight.labelling.judges import collect_transcripts, judge_examples, train_judge
from w2sg.data import split_by_question
from w2sg.datasets import load
from w2sg.train import TrainConfig


@functools.cache
def gold_of() -> dict[tuple[str, str], int]:
    return {(e.question, e.answer): e.label for e in load("sciq", "test")}


def honest_debaters(messages: Sequence[Message], params: GenerateParams) -> str:
    """Test oracle: a debater on the true side argues; one on the false side gives up."""
    prompt = messages[-1].content
    q = prompt.split("Question: ")[1].split("\n")[0]
    a = prompt.split("Proposed answer: ")[1].split("\n")[0]
    side_true = "answer is correct." in prompt
    honest = side_true == bool(gold_of()[(q, a)])
    return "This is well supported by the passage." if honest else "I concede, I cannot argue this."


@pytest.mark.slow
def test_trained_judge_reads_the_transcript(tmp_path: Path) -> None:
    rows = split_by_question(load("sciq", "test"), {"judge": 60}, seed=1)["judge"]
    cfg = DebateConfig(protocol="simultaneous", rounds=1, judge_kind="trained")
    debater = wrap(ScriptedBackend("scripted/honest", reply_fn=honest_debaters))
    states = asyncio.run(collect_transcripts(cfg, debater, rows))
    examples = judge_examples(cfg, rows, states)
    assert len(examples) == len(rows) and "Debater A" in examples[0].answer
    assert all(not e.support or e.support not in e.answer for e in examples)  # no context leak

    tcfg = TrainConfig(lr=1e-4, epochs=4, batch_size=16, eval_every=10, device="cpu")
    base = resolve_model_path("embedded/minilm")
    info = train_judge(cfg, rows, states, base_path=base, out_dir=tmp_path / "judge", train_cfg=tcfg)
    assert info.val_accuracy >= 0.9, info
    assert (tmp_path / "judge" / "judge.json").exists()

    judge = get_model(f"classifier/{tmp_path / 'judge'}")
    graph = build_debate_graph(cfg, debater=debater, judge=judge)
    held_out = split_by_question(load("sciq", "test"), {"x": 150}, seed=7)["x"][-20:]
    verdicts = [
        asyncio.run(run_debate(graph, e.question, e.answer, e.support or ""))["verdict"] for e in held_out
    ]
    assert all(v.method == "classifier" for v in verdicts)
    acc = np.mean([(v.p_true > 0.5) == bool(e.label) for v, e in zip(verdicts, held_out, strict=True)])
    assert acc >= 0.85

    with pytest.raises(FatalModelError, match="cannot generate"):
        asyncio.run(judge.generate("hi", max_tokens=4))
    probs = asyncio.run(judge.choice_probs(f"q a{PAIR_SEP}transcript", ["Yes", "No"]))
    assert abs(sum(probs.probs.values()) - 1) < 1e-6

    async def score_and_close() -> set[asyncio.Task[object]]:
        """Closing the judge leaves no task behind (a tournament builds one per match-up)."""
        await judge.choice_probs(f"q a{PAIR_SEP}transcript", ["Yes", "No"])
        await judge.aclose()
        await asyncio.sleep(0)  # the cancelled worker ends
        return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]

    assert asyncio.run(score_and_close()) == set()


def test_classifier_backend_needs_a_saved_directory(tmp_path: Path) -> None:
    with pytest.raises(FatalModelError, match="not a directory"):
        get_model(f"classifier/{tmp_path / 'missing'}")


def test_one_judge_training_default_for_run_and_judge_train(monkeypatch: pytest.MonkeyPatch) -> None:
    """`w2sg run` and `w2sg judge train` / `train_judge` train judges with the same default: the one
    that learns (lr 1e-4 x 5 epochs; at 5e-5 x 3 the judges stayed at chance)."""
    import oversight.labelling.judges as judges
    from oversight.experiments.run.config import JudgeTraining
    from w2sg.data import Example

    default = judges.judge_train_config()
    assert (default.lr, default.epochs, default.batch_size, default.eval_every) == (1e-4, 5, 16, 15)
    assert default.warmup_frac == 0.1 and JudgeTraining().train == default
    used: list = []

    def stop(model: object, *args: object, **kwargs: object) -> None:
        used.append(args[4])  # train(model, x, y, vx, vy, tcfg, ...)
        raise RuntimeError("stop")

    monkeypatch.setattr(judges, "train", stop)
    monkeypatch.setattr(judges, "SeqClassifier", lambda *a, **k: None)
    rows = [
        Example(id=f"q{i}-{a}", qid=f"q{i}", question="q", answer=a, label=int(a == "y"))
        for i in range(5)
        for a in "yn"
    ]
    cfg = DebateConfig(protocol="blind", judge="scripted/j")
    states = [{"question": e.question, "answer": e.answer, "transcript": []} for e in rows]
    with pytest.raises(RuntimeError, match="stop"):
        judges.train_judge(cfg, rows, states, base_path="x", out_dir="y", seed=3)  # type: ignore[arg-type]
    assert used == [judges.judge_train_config(seed=3)]
