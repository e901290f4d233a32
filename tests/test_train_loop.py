"""The training loop at scale: precision, rows tokenized once, no host reads per step, gradient
accumulation, gradient checkpointing, best states kept on the host."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.names import resolve_model_path
from w2sg.data import Example, label_source, make_example
from w2sg.features import lm_text
from w2sg.metrics import Estimate, correct, mean_ci
from w2sg.models import Classifier, FeatureHead, ModelConfig, build_classifier
from w2sg.synthetic import SyntheticModel, synthetic_features, synthetic_rows
from w2sg.train import TrainConfig, _snapshot, predict, resolve_precision, train

TINY = "embedded/tiny-gpt2"


def separable(n: int, seed: int) -> tuple[list[Example], dict[str, torch.Tensor]]:
    """Two Gaussian clusters in 16 dimensions, ~98% Bayes accuracy."""
    g = torch.Generator().manual_seed(seed)
    rows, feats = [], {}
    for i in range(n):
        e = make_example(f"s{seed}-q{i}", f"a{i}", i % 2)
        feats[e.id] = torch.randn(16, generator=g) + (1.0 if i % 2 else -1.0) * torch.linspace(0.2, 0.8, 16)
        rows.append(e)
    return rows, feats


def text_rows(n: int) -> list[Example]:
    words = ["red", "blue", "green", "yellow", "a much longer answer than any of the others"]
    return [make_example(f"Which colour is apple {i}?", words[i % 5], int(i % 5 == 0)) for i in range(n)]


def tiny_lm(**cfg: object) -> Classifier:
    torch.manual_seed(0)
    mcfg = ModelConfig.model_validate({"kind": "lm_head", "path": TINY, "max_length": 32, **cfg})
    return build_classifier(mcfg, resolve_model_path(TINY), train=[])


def fit(model: Classifier, rows: list[Example], **cfg: object) -> None:
    """Train on gold without evaluating until the end (one 4-row validation)."""
    tcfg = TrainConfig.model_validate({"epochs": 1, "eval_every": 10**6, "device": "cpu", **cfg})
    gold = label_source(rows, "gold")
    train(model, rows, gold, rows[:4], gold[:4], tcfg)


def params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_batches_are_the_tokenizers_own_padding() -> None:
    # Rows tokenized once and padded per batch are exactly one padded tokenizer call.
    rows = text_rows(7)
    lm = tiny_lm()
    texts = [lm_text(e) for e in rows]
    ref = lm.tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    got = lm.encode(rows)
    assert got.keys() == {"input_ids", "attention_mask"}
    assert all(torch.equal(got[k], ref[k]) for k in got) and not bool(ref["attention_mask"].all())
    path = resolve_model_path("embedded/minilm")
    seq = build_classifier(ModelConfig(kind="seq_cls", path="embedded/minilm", max_length=16), path, train=[])
    pair = ([e.question for e in rows], [e.answer for e in rows])
    ref = seq.tokenizer(*pair, padding=True, truncation=True, max_length=16, return_tensors="pt")
    got = seq.encode(rows)
    assert got.keys() == set(ref) and all(torch.equal(got[k], ref[k]) for k in ref)


def test_predictions_come_back_in_row_order() -> None:
    # predict batches rows shortest first; each row's p(true) is still its own, in input order.
    rows = text_rows(9)
    lm = tiny_lm()
    torch.nn.init.normal_(lm.head.weight, std=0.05)
    together = predict(lm, rows, batch_size=4, device="cpu")
    alone = np.array([predict(lm, [e], device="cpu")[0] for e in rows])
    assert np.allclose(together, alone, atol=1e-6) and len(set(np.round(alone, 4))) >= 5


def test_precision_auto_is_fp32_on_cpu() -> None:
    assert resolve_precision("auto", "cpu") is None
    assert resolve_precision("fp32", "cpu") is None
    assert resolve_precision("bf16", "cpu") is torch.bfloat16
    assert resolve_precision("fp16", "cpu") is torch.float16


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_bf16_runs_the_backbone_under_autocast_with_fp32_weights(precision: str, dtype: torch.dtype) -> None:
    lm = tiny_lm()
    seen: list[torch.dtype] = []
    lm.backbone.h[0].mlp.c_fc.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    before = params(lm)
    fit(lm, text_rows(40), lr=1e-3, batch_size=8, precision=precision)
    assert seen and set(seen) == {dtype}
    assert all(p.dtype == torch.float32 for p in lm.parameters())  # master weights stay fp32
    assert any(not torch.equal(before[n], p) for n, p in params(lm).items())  # it trained


def test_fp16_trains_with_loss_scaling() -> None:
    lm = tiny_lm()
    before = params(lm)
    fit(lm, text_rows(24), lr=1e-3, batch_size=8, precision="fp16")
    after = params(lm)
    assert all(torch.isfinite(p).all() for p in after.values())
    assert any(not torch.equal(before[n], p) for n, p in after.items())


def tiny_w2sg(precision: str) -> dict[str, Estimate]:
    """A weak-to-strong experiment on the synthetic task (w2sg.synthetic): a weak MLP on a noisy
    view labels the strong split, a strong MLP on a clear view learns from those labels, and a
    ceiling from gold; test accuracy of each with its question-level interval."""
    sp = {
        k: synthetic_rows(n, seed=0, split=k)
        for k, n in [("weak", 150), ("strong", 300), ("val", 60), ("test", 300)]
    }
    rows = [e for v in sp.values() for e in v]
    views = {
        r: synthetic_features(rows, SyntheticModel(kind="synthetic", signal=s), view=r, seed=0)
        for r, s in [("weak", 0.6), ("strong", 2.0)]
    }
    gold = {k: label_source(v, "gold") for k, v in sp.items()}
    cfg = TrainConfig(lr=3e-3, epochs=6, batch_size=32, eval_every=20, device="cpu", precision=precision)

    def fit(view: str, split: str, labels: list[float], val_labels: list[float]) -> FeatureHead:
        torch.manual_seed(0)
        head = FeatureHead(views[view], [e.id for e in sp[split]], hidden=32)
        train(head, sp[split], labels, sp["val"], val_labels, cfg)
        return head

    weak = fit("weak", "weak", gold["weak"], gold["val"])
    weak_labels = {
        k: predict(weak, sp[k], device="cpu", precision=precision).tolist() for k in ("strong", "val")
    }
    models = {
        "weak": weak,
        "student": fit("strong", "strong", weak_labels["strong"], weak_labels["val"]),
        "ceiling": fit("strong", "strong", gold["strong"], gold["val"]),
    }
    qids = [e.qid for e in sp["test"]]
    return {
        name: mean_ci(
            correct(predict(m, sp["test"], device="cpu", precision=precision), gold["test"]), qids, n_boot=300
        )
        for name, m in models.items()
    }


def test_the_same_tiny_experiment_in_fp32_and_bf16_lands_within_its_interval() -> None:
    fp32, bf16 = tiny_w2sg("fp32"), tiny_w2sg("bf16")
    assert fp32["weak"].hi < fp32["ceiling"].lo  # a real weak-to-strong gap, not two coin flips
    for name in fp32:
        a, b = fp32[name], bf16[name]
        assert a.lo <= b.value <= a.hi and b.lo <= a.value <= b.hi, (name, a, b)


@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_accumulation_is_one_larger_batch(weighted: bool) -> None:
    tr, feats = separable(90, 0)  # batches of 30 in micro-batches of 8, 8, 7, 7
    gold = label_source(tr, "gold")
    weights = np.linspace(0.5, 2.0, len(tr)).tolist() if weighted else None
    heads = []
    for accum in (1, 4):
        torch.manual_seed(0)
        head = FeatureHead(feats, [e.id for e in tr])
        cfg = TrainConfig(lr=1e-2, epochs=2, batch_size=30, eval_every=10**6, device="cpu", grad_accum=accum)
        train(head, tr, gold, tr[:4], gold[:4], cfg, weights=weights)
        heads.append(params(head))
    one, accumulated = heads
    assert all(torch.allclose(one[n], accumulated[n], atol=1e-6) for n in one)


def test_gradient_checkpointing_changes_no_result() -> None:
    rows = text_rows(24)
    results = []
    for checkpointing in (False, True):
        lm = tiny_lm()  # dropout on: recomputed passes must draw the same masks
        fit(lm, rows, lr=1e-3, batch_size=8, gradient_checkpointing=checkpointing)
        results.append(params(lm))
    plain, recomputed = results
    assert all(torch.allclose(plain[n], recomputed[n], atol=1e-6) for n in plain)


def test_gradient_checkpointing_with_lora_and_a_model_without_backbone() -> None:
    pytest.importorskip("peft")
    lm = tiny_lm(lora={"r": 4, "alpha": 8})
    before = params(lm)
    fit(lm, text_rows(16), lr=1e-3, batch_size=8, gradient_checkpointing=True)
    assert any(not torch.equal(before[n], p) for n, p in params(lm).items() if "lora_B" in n)
    tr, feats = separable(8, 0)
    with pytest.raises(ValueError, match="gradient_checkpointing needs a transformer backbone"):
        fit(FeatureHead(feats, [e.id for e in tr]), tr, gradient_checkpointing=True)


def test_the_best_state_is_a_host_copy_of_what_trains() -> None:
    lm = tiny_lm(freeze_backbone=True)
    state = _snapshot(lm)
    trainable = {n for n, p in lm.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"} and trainable <= state.keys()
    assert not any(k.startswith("backbone.") and k in dict(lm.named_parameters()) for k in state)
    assert all(t.device.type == "cpu" for t in state.values())
    state["head.bias"] += 1  # a copy, not a view of the live weights
    assert not torch.equal(state["head.bias"], lm.head.bias)


ROOT = str(Path(__file__).resolve().parents[1])


@contextmanager
def count_host_reads() -> Iterator[list[str]]:
    """Counts every way the project's code reads a tensor's value back to the host (on a GPU, each
    waits for all queued work). torch's own reads are not counted: those it makes per step (a CPU
    step counter in the optimizer, the sampler's CPU shuffle) never touch the device."""
    calls: list[str] = []
    names = ["item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__"]
    saved = {n: getattr(torch.Tensor, n) for n in names}

    def counted(name: str):  # type: ignore[no-untyped-def]
        def read(self, *a, **k):  # type: ignore[no-untyped-def]
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(ROOT) and "/.venv/" not in caller:
                calls.append(f"{name} in {caller}:{sys._getframe(1).f_lineno}")
            return saved[name](self, *a, **k)

        return read

    for n in names:
        setattr(torch.Tensor, n, counted(n))
    try:
        yield calls
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)


@pytest.mark.parametrize("loss", ["xent", "logconf", "product"])
def test_the_step_loop_reads_nothing_back_per_step(loss: str) -> None:
    # Host reads happen before training and at evaluation points, never per step: 8 steps and 32
    # steps with the same evaluations read back the same number of times.
    tr, feats = separable(256, 0)
    gold = label_source(tr, "gold")
    reads = []
    for batch in (32, 8):
        head = FeatureHead(feats, [e.id for e in tr])
        cfg = TrainConfig(lr=1e-2, epochs=1, batch_size=batch, eval_every=10**6, loss=loss, device="cpu")
        with count_host_reads() as calls:
            res = train(head, tr, gold, tr[:4], gold[:4], cfg)
        reads.append(len(calls))
        assert res.steps == 256 // batch
    assert reads[0] == reads[1], reads


def test_loss_args_reach_the_loss() -> None:
    # logconf with aux_coef 0 is xent; with the default 0.5 it is not.
    tr, feats = separable(96, 0)
    gold = label_source(tr, "gold")
    heads = {}
    for name, cfg in {
        "xent": {"loss": "xent"},
        "logconf0": {"loss": "logconf", "loss_args": {"logconf": {"aux_coef": 0.0}}},
        "logconf": {"loss": "logconf"},
    }.items():
        torch.manual_seed(0)
        head = FeatureHead(feats, [e.id for e in tr])
        tcfg = TrainConfig.model_validate(
            {"lr": 1e-2, "epochs": 2, "eval_every": 10**6, "device": "cpu", **cfg}
        )
        train(head, tr, gold, tr[:4], gold[:4], tcfg)
        heads[name] = params(head)
    assert all(torch.allclose(heads["xent"][n], heads["logconf0"][n]) for n in heads["xent"])
    assert not all(torch.allclose(heads["xent"][n], heads["logconf"][n]) for n in heads["xent"])
    with pytest.raises(ValueError, match=r"logconf: .*unexpected keyword argument 'aux'"):
        TrainConfig(loss_args={"logconf": {"aux": 0.5}})  # type: ignore[dict-item]
