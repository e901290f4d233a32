"""ICL W2SG: demo selectors on a toy pool, confidence formatting, and a run over SciQ rows with the
scripted backend (a real backend) standing in for the strong LLM."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from agents import wrap
from agents.backends.scripted import ScriptedBackend
from agents.names import resolve_model_path
from agents.types import Message
from w2sg.data import make_example
from w2sg.experiment import Sizes, W2SGConfig
from w2sg.icl import (
    ICLConfig,
    build_messages,
    demo_text,
    format_confidence,
    select_balanced,
    select_demos,
    topk_by_similarity,
    votek,
)
from w2sg.icl_experiment import run_icl
from w2sg.models import ModelConfig
from w2sg.train import TrainConfig


def test_confidence_formatting() -> None:
    assert format_confidence(0.87) == "(Confidence: 0.87)"
    assert format_confidence(0.13) == "(Confidence: 0.87)"  # confidence in the label given (0)
    assert format_confidence(0.5) == "(Confidence: 0.50)"
    e = make_example("What do plants absorb?", "light", 1)
    assert demo_text(e, 0.87, True).endswith("Label: 1 (Confidence: 0.87)")
    assert demo_text(e, 0.2, False).endswith("Label: 0")
    msg = build_messages([(e, 0.9)], make_example("Why is the sky blue?", "scattering", 1), confidence=True)
    assert msg[0]["content"].endswith("Question: Why is the sky blue?\nAnswer: scattering\nLabel:")


def angles(degrees: Sequence[float]) -> np.ndarray:
    r = np.radians(degrees)
    return np.stack([np.cos(r), np.sin(r)], axis=1)


# Cluster A (5 points, one dense core) and cluster B (3 points), on the unit circle.
POOL_DEG = [0, 4, 10, 18, 30, 90, 93, 99]


def test_votek_picks_the_densest_point_then_covers_the_other_cluster() -> None:
    # With 2 neighbours, row 2 (10°) gets 4 votes; once it is chosen, votes from its neighbours
    # count 1/10, so the next pick comes from cluster B (three 2-vote ties: the lowest index, 5).
    assert votek(angles(POOL_DEG), 2, neighbors=2) == [2, 5]
    assert len(set(votek(angles(POOL_DEG), 8, neighbors=2))) == 8


def test_topk_returns_nearest_last() -> None:
    got = topk_by_similarity(angles(POOL_DEG), angles([12, 95]), 2)
    assert got == [[3, 2], [7, 6]]  # 12°: 18° then 10°; 95°: 99° then 93°


def test_bm25_finds_the_row_sharing_rare_words() -> None:
    pool = [
        make_example("What gas do plants take in?", "carbon dioxide", 1),
        make_example("What organelle makes energy?", "mitochondria", 1),
        make_example("What is the boiling point of water?", "100 degrees", 1),
    ]
    query = make_example("Which organelle produces energy in cells?", "mitochondria", 1)
    picks = select_demos("bm25", pool, np.ones(3), [query], 2)
    assert picks[0][-1] == 1  # the most relevant demo sits next to the query


def test_random_and_balanced_selectors() -> None:
    labels = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0.2, 0.9])
    pool = [make_example(f"q{i}", "a", int(p > 0.5)) for i, p in enumerate(labels)]
    queries = [make_example(f"query {i}", "a", 1) for i in range(20)]
    picks = select_demos("random", pool, labels, queries, 4, seed=1)
    assert all(len(set(p)) == 4 for p in picks) and len({tuple(p) for p in picks}) > 10
    assert picks == select_demos("random", pool, labels, queries, 4, seed=1)
    for rng_seed in range(10):
        got = select_balanced(labels, 4, np.random.default_rng(rng_seed))
        assert sorted(int(labels[i] > 0.5) for i in got) == [0, 0, 1, 1]
        odd = select_balanced(labels, 3, np.random.default_rng(rng_seed))
        assert len(odd) == 3 and {int(labels[i] > 0.5) for i in odd} == {0, 1}
    with pytest.raises(ValueError, match="embeddings"):
        select_demos("topk", pool, labels, queries, 2)


def test_icl_run_with_scripted_model(tmp_path: Path) -> None:
    tiny = ModelConfig(kind="features", path="embedded/tiny-gpt2", max_length=48)
    tcfg = TrainConfig(lr=1e-3, epochs=1, batch_size=16, eval_every=4, device="cpu")
    cfg = W2SGConfig(
        name="icl",
        sizes=Sizes(weak=15, strong=25, val=8, test=30),
        weak=tiny,
        weak_train=tcfg,
        strong=tiny,
        strong_train=tcfg,
        icl=ICLConfig(
            k=3,
            label_sources=["gold", "weak", "weak_p_true"],
            confidence=[False, True],
            test_questions=6,
            votek_size=8,
        ),
        n_boot=200,
        out_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
    )
    from w2sg.datasets import load

    gold_of = {(e.question, e.answer): e.label for e in load("sciq", "test")}

    def oracle(messages: Sequence[Message], choices: Sequence[str]) -> dict[str, float]:
        # Reads the query off the prompt and answers with its gold label: the run must then score
        # exactly 1.0, which pins the whole path from choice_probs to accuracy.
        q, a = re.findall(r"Question: (.*)\nAnswer: (.*)\nLabel:$", messages[-1].content)[0]
        return {"1": float(gold_of[(q, a)]), "0": 1.0 - gold_of[(q, a)]}

    backend = ScriptedBackend(probs_fn=oracle)
    result = run_icl(cfg, wrap(backend), resolve=resolve_model_path)
    # two rows per question (a few SciQ question texts repeat, bringing four)
    assert result.sizes["test"] == 12 and 50 <= result.sizes["pool"] <= 54
    assert len(result.rows) == 1 + 5 * 3 * 2  # zero-shot + selectors × sources × confidence
    assert all(r.accuracy.value == 1.0 and r.accuracy.n == 12 and r.auc == 1.0 for r in result.rows)
    assert all(r.mean_p == 0.5 for r in result.rows)  # SciQ rows are half true
    assert len(backend.calls) == 12 * len(result.rows)
    gold_rows = [r for r in result.rows if r.source == "gold"]
    assert all(r.demo_label_accuracy == 1.0 for r in gold_rows)
    assert result.source_accuracy["gold"] == 1.0 and 0 < result.source_accuracy["weak_p_true"] < 1

    prompts = [m[-1].content for kind, m in backend.calls]
    test_questions = {q for q, _ in gold_of}
    for p in prompts:
        demos = re.findall(r"Question: (.*)\n", p)[:-1]
        assert len(demos) in (0, 3) and not set(demos) & test_questions  # demos come from the pool
        assert p.count("(Confidence: ") in (0, 3)
    assert sum("(Confidence: " in p for p in prompts) == 12 * 5 * 3

    run_dir = tmp_path / "runs" / result.run_id
    names = {"config.json", "results.json", "results.md", "results.png", "predictions.npz"}
    assert {p.name for p in run_dir.iterdir()} == names
    saved = np.load(run_dir / "predictions.npz")
    assert saved["gold"].shape == saved["votek__weak_p_true__conf"].shape == (12,)
    assert "| votek | yes |" in (run_dir / "results.md").read_text()
    # A complete run is reused: no new model calls.
    assert run_icl(cfg, wrap(backend), resolve=resolve_model_path) == result
    assert len(backend.calls) == 12 * len(result.rows)
