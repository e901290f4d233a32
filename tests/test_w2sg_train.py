"""Classifiers learn, the loop selects on validation only, and a small end-to-end experiment runs
on CPU (the feature cache: test_feature_cache.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.names import resolve_model_path
from w2sg.data import Example, label_source, make_example
from w2sg.experiment import Sizes, W2SGConfig, run_experiment
from w2sg.models import FeatureHead, ModelConfig, build_classifier
from w2sg.train import TrainConfig, TrainResult, lr_at, predict, train


def synthetic_rows(n: int, seed: int) -> tuple[list[Example], dict[str, torch.Tensor]]:
    """Two Gaussian clusters in 16 dimensions: linearly separable, ~98% Bayes accuracy."""
    g = torch.Generator().manual_seed(seed)
    rows, feats = [], {}
    for i in range(n):
        label = i % 2
        e = make_example(f"s{seed}-q{i}", f"a{i}", label)
        feats[e.id] = torch.randn(16, generator=g) + (1.0 if label else -1.0) * torch.linspace(0.2, 0.8, 16)
        rows.append(e)
    return rows, feats


def fit_on_gold(model: torch.nn.Module, tr: list[Example], va: list[Example], **cfg: object) -> TrainResult:
    tcfg = TrainConfig.model_validate({"epochs": 3, "eval_every": 10, "device": "cpu", **cfg})
    return train(model, tr, label_source(tr, "gold"), va, label_source(va, "gold"), tcfg)


def accuracy_on(model: torch.nn.Module, rows: list[Example]) -> float:
    return float(np.mean((predict(model, rows) > 0.5) == np.array([e.label for e in rows])))


def test_feature_head_learns_a_separable_task() -> None:
    tr, f1 = synthetic_rows(400, 0)
    va, f2 = synthetic_rows(100, 1)
    te, f3 = synthetic_rows(200, 2)
    model = FeatureHead({**f1, **f2, **f3}, [e.id for e in tr])
    res = fit_on_gold(model, tr, va, lr=1e-2, batch_size=32)
    assert accuracy_on(model, te) > 0.9
    assert res.best_val_accuracy > 0.9 and res.history


def test_minilm_sequence_classifier_learns_a_text_rule() -> None:
    colours = ["red", "blue", "green", "yellow"]

    def rows(n: int, off: int) -> list[Example]:
        return [
            make_example(f"Which colour is the apple number {i + off}?", colours[i % 4], int(i % 4 == 0))
            for i in range(n)
        ]

    tr, va, te = rows(160, 0), rows(40, 1000), rows(80, 2000)
    cfg = ModelConfig(kind="seq_cls", path="embedded/minilm", max_length=32)
    model = build_classifier(cfg, resolve_model_path(cfg.path), train=tr)
    fit_on_gold(model, tr, va, lr=1e-4, batch_size=16)
    assert accuracy_on(model, te) > 0.9


def test_selection_uses_validation_and_restores_the_best_state() -> None:
    tr, f1 = synthetic_rows(200, 0)
    va, f2 = synthetic_rows(60, 1)
    model = FeatureHead({**f1, **f2}, [e.id for e in tr])
    # Validation labels flipped: the best state is the one that is *worst* on the true task, so
    # selection demonstrably reads val_labels (and nothing else).
    flipped = [1.0 - y for y in label_source(va, "gold")]
    res = train(
        model,
        tr,
        label_source(tr, "gold"),
        va,
        flipped,
        TrainConfig(lr=1e-2, epochs=2, batch_size=20, eval_every=2, device="cpu"),
    )
    assert res.best_val_accuracy == max(h[2] for h in res.history)
    assert np.mean((predict(model, va) > 0.5) == np.array(flipped)) == pytest.approx(res.best_val_accuracy)


def test_cosine_schedule() -> None:
    cfg = TrainConfig(warmup_frac=0.1)
    assert lr_at(0, 100, cfg) == pytest.approx(0.1)
    assert lr_at(10, 100, cfg) == pytest.approx(1.0)
    assert lr_at(55, 100, cfg) == pytest.approx(0.5)
    assert lr_at(99, 100, cfg) < 0.01


def test_lm_head_pools_the_last_non_pad_token() -> None:
    cfg = ModelConfig(kind="lm_head", path="embedded/tiny-gpt2", max_length=32, freeze_backbone=True)
    model = build_classifier(cfg, resolve_model_path(cfg.path), train=[])
    rows = [make_example("short?", "a", 1), make_example("a much longer question with many words?", "b", 0)]
    torch.nn.init.normal_(model.head.weight)
    batch = model.encode(rows)
    assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()  # padding happened
    alone = model(**model.encode(rows[:1]))
    assert torch.allclose(model(**batch)[0], alone[0], atol=1e-5)  # pads did not change row 0
    assert model.tokenizer.pad_token_id == model.tokenizer.eos_token_id  # GPT-2 has no pad token


def test_lm_head_with_lora_trains_only_adapters_and_head() -> None:
    pytest.importorskip("peft")
    cfg = ModelConfig(kind="lm_head", path="embedded/tiny-gpt2", lora={"r": 4, "alpha": 8})
    model = build_classifier(cfg, resolve_model_path(cfg.path), train=[])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)


def test_small_experiment_end_to_end(tmp_path: Path) -> None:
    cfg = W2SGConfig(
        name="e2e",
        sizes=Sizes(weak=20, strong=40, val=15, test=30),
        weak=ModelConfig(kind="features", path="embedded/tiny-gpt2", max_length=48),
        weak_train=TrainConfig(lr=1e-3, epochs=2, batch_size=16, eval_every=4, device="cpu"),
        strong=ModelConfig(kind="features", path="embedded/tiny-gpt2", max_length=48, pooling="mean"),
        strong_train=TrainConfig(lr=1e-3, epochs=2, batch_size=16, eval_every=4, device="cpu"),
        label_sources=["weak", "weak_p_true"],
        losses=["xent", "logconf"],
        n_boot=200,
        out_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
    )
    result = run_experiment(cfg, resolve=resolve_model_path)
    run = tmp_path / "runs" / result.run_id
    assert {p.name for p in run.iterdir()} == {
        "config.json",
        "results.json",
        "results.md",
        "results.png",
        "predictions.npz",
        "supervisors.npz",
        "curves.png",  # always, tracking or not (tests/test_tracking.py)
    }
    saved = np.load(run / "predictions.npz")
    assert len(saved["ids"]) == 60 and "student__weak_p_true__logconf" in saved.files
    sup = np.load(run / "supervisors.npz")
    assert sup["weak__strong"].shape == sup["strong__ids"].shape == (result.sizes["strong"],)
    # two rows per question (a few SciQ question texts repeat, bringing four)
    assert result.sizes["test"] == 60 and 2 * 40 <= result.sizes["strong"] <= 2 * 40 + 4
    assert len(result.students) == 4
    for s in result.students:
        assert 0 <= s.accuracy.lo <= s.accuracy.value <= s.accuracy.hi <= 1
    recorded = next(s for s in result.sources if s.source == "weak_p_true")
    assert recorded.floor_split == "strong"
    table = (run / "results.md").read_text()
    assert "| weak_p_true |" in table and "PGR" in table
    # No dev split: nothing is scored on one, and the report has no dev section.
    assert "dev" not in result.sizes and result.ceiling_dev is None and "Validation (dev" not in table
    assert all(s.floor_dev is None for s in result.sources)
    assert all(s.accuracy_dev is None and s.pgr_dev is None for s in result.students)
    # Every interval resamples questions: recomputed from the saved per-row predictions and
    # question ids, the ceiling's and each student's figures are the question-level bootstrap's.
    from w2sg.metrics import correct, mean_ci, pgr_ci

    test_cols = [k for k in saved.files if k not in ("ids", "qids", "gold") and not k.startswith("strong__")]
    ok = {k: correct(saved[k], saved["gold"]) for k in test_cols}
    assert len(set(saved["qids"].tolist())) < len(saved["qids"])  # two rows per question
    assert result.ceiling == mean_ci(ok["ceiling"], saved["qids"], n_boot=200, seed=0)
    weak = next(s for s in result.students if s.source == "weak" and s.loss == "xent")
    assert weak.accuracy == mean_ci(ok["student__weak__xent"], saved["qids"], n_boot=200, seed=0)
    args = (ok["floor__weak"], ok["student__weak__xent"], ok["ceiling"], saved["qids"])
    assert weak.pgr == pgr_ci(*args, n_boot=200, seed=0)
    # ROC AUC of every model, and PGR on AUC, with the same question resamples.
    from w2sg.metrics import auc_ci, auc_pgr_ci

    gold, qids = saved["gold"], saved["qids"]
    assert result.ceiling_auc == auc_ci(saved["ceiling"], gold, qids, n_boot=200, seed=0)
    assert weak.auc == auc_ci(saved["student__weak__xent"], gold, qids, n_boot=200, seed=0)
    probs = (saved["floor__weak"], saved["student__weak__xent"], saved["ceiling"])
    assert weak.auc_pgr == auc_pgr_ci(*probs, gold, qids, n_boot=200, seed=0)
    # A supervisor with no test predictions is floored on the strong split, saved with its questions.
    s_floor, s_gold, s_qids = (
        saved["strong__floor__weak_p_true"],
        saved["strong__gold"],
        saved["strong__qids"],
    )
    assert len(saved["strong__ids"]) == result.sizes["strong"] == len(s_floor)
    assert recorded.floor == mean_ci(correct(s_floor, s_gold), s_qids, n_boot=200, seed=0)
    assert recorded.floor_auc == auc_ci(s_floor, s_gold, s_qids, n_boot=200, seed=0)
    rec = next(s for s in result.students if s.source == "weak_p_true" and s.loss == "xent")
    on_strong = {"floor_groups": s_qids, "paired": False, "n_boot": 200, "seed": 0}
    oks = (correct(s_floor, s_gold), ok["student__weak_p_true__xent"], ok["ceiling"])
    assert rec.pgr == pgr_ci(*oks, qids, **on_strong)
    probs = (s_floor, saved["student__weak_p_true__xent"], saved["ceiling"])
    assert rec.auc_pgr == auc_pgr_ci(*probs, gold, qids, floor_gold=s_gold, **on_strong)
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["name"] == "e2e" and config["data"]["rows"]["test"] == 60
    assert result.run_id == cfg.run_id(config["data"]["fingerprint"])
    # A complete run folder is reused, not recomputed.
    (run / "results.md").write_text("sentinel")
    assert run_experiment(cfg, resolve=resolve_model_path).model_dump_json() == result.model_dump_json()
    assert (run / "results.md").read_text() == "sentinel"


def test_dev_split_scores_every_model_without_training_or_selecting_on_it(tmp_path: Path) -> None:
    from w2sg.ensembles import EnsembleConfig
    from w2sg.experiment import prepare_splits
    from w2sg.metrics import correct, mean_ci

    tiny = ModelConfig(kind="features", path="embedded/tiny-gpt2", max_length=48)
    tcfg = TrainConfig(lr=1e-3, epochs=1, batch_size=16, eval_every=4, device="cpu")
    cfg = W2SGConfig(
        name="dev",
        sizes=Sizes(weak=20, strong=30, val=10, test=20, dev=15),
        weak=tiny,
        weak_train=tcfg,
        strong=tiny.model_copy(update={"pooling": "mean"}),
        strong_train=tcfg,
        label_sources=["weak", "weak_p_true", "bagging"],
        ensembles=[EnsembleConfig(method="bagging", n=2)],
        n_boot=100,
        out_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
    )
    sp = prepare_splits(cfg)
    qids = {k: {e.qid for e in v} for k, v in sp.items()}
    assert len(qids["dev"]) == 15
    for k in ("weak", "strong", "val", "test"):
        assert not qids["dev"] & qids[k], k
    # Drawn last: with counts, the other splits keep the questions they have without a dev split.
    plain = prepare_splits(cfg.model_copy(update={"sizes": cfg.sizes.model_copy(update={"dev": None})}))
    assert "dev" not in plain
    assert all([e.id for e in plain[k]] == [e.id for e in sp[k]] for k in plain)

    result = run_experiment(cfg, resolve=resolve_model_path)
    assert result.sizes["dev"] == len(sp["dev"])
    assert result.ceiling_dev is not None and result.ceiling_dev.n == len(sp["dev"])
    assert all(s.floor_dev is not None and s.floor_dev.n == len(sp["dev"]) for s in result.sources)
    assert all(s.accuracy_dev is not None and s.pgr_dev is not None for s in result.students)
    # Each floor on dev is its supervisor's accuracy there: the recorded column, the weak teacher's
    # and the ensemble's saved dev p(true), with the question-level bootstrap of the test figures.
    run = tmp_path / "runs" / result.run_id
    sup = np.load(run / "supervisors.npz")
    assert sup["dev__ids"].tolist() == [e.id for e in sp["dev"]]
    gold, dev_qids = np.array(label_source(sp["dev"], "gold")), np.array([e.qid for e in sp["dev"]])
    probs = {
        "weak_p_true": np.array(label_source(sp["dev"], "weak_p_true")),
        "weak": sup["weak__dev"],
        "bagging": sup["bagging__dev"],
    }
    for s in result.sources:
        assert s.floor_dev == mean_ci(correct(probs[s.source], gold), dev_qids, n_boot=100, seed=0)
    table = (run / "results.md").read_text()
    head = f"Validation (dev split, {len(sp['dev'])} rows: choose settings here, not on test)"
    assert head in table and table.index(head) < table.index("Ensembles")
    dev_part = table[table.index(head) :]
    assert "| label source | floor (dev) | loss | student (dev) | ceiling (dev) | PGR (dev) |" in dev_part
    recorded = next(s for s in result.sources if s.source == "weak_p_true")
    assert f"| weak_p_true | {recorded.floor_dev} | xent |" in dev_part
    assert "the ceiling on dev" in dev_part  # the regime line of the dev floors
    assert run_experiment(cfg, resolve=resolve_model_path).model_dump_json() == result.model_dump_json()


def test_run_id_of_a_config_without_dev_is_the_one_before_dev_existed() -> None:
    from pydantic import BaseModel, ConfigDict, Field, create_model

    from w2sg.data import Size
    from w2sg.identity import run_id

    class OldSizes(BaseModel):  # Sizes as it was before `dev`
        model_config = ConfigDict(extra="forbid")
        weak: Size = 600
        strong: Size = 1000
        val: Size = 200
        test: Size | None = None

    old_config = create_model(
        "W2SGConfig", __base__=W2SGConfig, sizes=(OldSizes, Field(default_factory=OldSizes))
    )
    tiny = ModelConfig(kind="features", path="embedded/tiny-gpt2")
    cfg = W2SGConfig(name="rid", sizes=Sizes(weak=0.2, strong="rest", val=50), weak=tiny, strong=tiny)
    old = old_config.model_validate(cfg.model_dump(exclude_unset=True))  # no sizes.dev in it
    # (`seeds`, unset, and `methods`, at its default, came later and are left out like `dev`:
    # test_seeds.py and test_methods.py check those.)
    assert cfg.run_id("fp") == run_id("rid", old, "fp", exclude=frozenset({"icl", "seeds", "methods"}))
    with_dev = cfg.model_copy(update={"sizes": cfg.sizes.model_copy(update={"dev": 50})})
    assert with_dev.run_id("fp") != cfg.run_id("fp")


DDP_SCRIPT = """
import sys, numpy as np
sys.path[:0] = [{root!r}, {tests!r}]
from test_w2sg_train import synthetic_rows
from w2sg.data import label_source
from w2sg.models import FeatureHead
from w2sg.train import TrainConfig, predict, train
tr, f1 = synthetic_rows(400, 0)
va, f2 = synthetic_rows(100, 1)
model = FeatureHead({{**f1, **f2}}, [e.id for e in tr])
res = train(model, tr, label_source(tr, "gold"), va, label_source(va, "gold"),
            TrainConfig(lr=1e-2, epochs=2, batch_size=32, eval_every=5, device="cpu"))
w = model.head.weight.detach().numpy().ravel()
# One file per rank: two ranks printing to one stdout can interleave mid-line.
import os, pathlib
pathlib.Path({out!r}, "rank" + os.environ["RANK"]).write_text(f"{{res.steps}} {{round(float(w.sum()), 6)}}")
# End the process group on both ranks before exiting, so neither sees its peer vanish mid-teardown.
import torch.distributed as dist
if dist.is_initialized():
    dist.barrier()
    dist.destroy_process_group()
"""


def test_train_runs_under_torchrun_with_two_processes(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    root = Path(__file__).resolve().parents[1]
    script.write_text(DDP_SCRIPT.format(root=str(root), tests=str(root / "tests"), out=str(tmp_path)))
    out = subprocess.run(
        # --standalone: rendezvous on a free local port, never a fixed one another job may hold.
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[:3000] + "\n...\n" + out.stderr[-2000:]
    results = [(tmp_path / f"rank{r}").read_text().split() for r in (0, 1)]
    # 400 rows / 32 = 13 batches a process alone; sharded over 2 processes, 7 each, for 2 epochs.
    assert [r[0] for r in results] == ["14", "14"]
    assert results[0][1] == results[1][1]  # gradients were all-reduced: both ranks hold one model


TORCHRUN_CONFIG = """
name: ddp
sizes: {weak: 20, strong: 40, val: 15, test: 30}
weak: {kind: features, path: embedded/tiny-gpt2, max_length: 48}
weak_train: {lr: 1.0e-3, epochs: 2, batch_size: 16, eval_every: 4, device: cpu}
strong: {kind: features, path: embedded/tiny-gpt2, max_length: 48, pooling: mean}
strong_train: {lr: 1.0e-3, epochs: 2, batch_size: 16, eval_every: 4, device: cpu}
label_sources: [weak]
n_boot: 100
"""


def test_w2sg_train_runs_whole_under_torchrun_and_one_process_writes(tmp_path: Path) -> None:
    # Every process runs the whole experiment (features, DDP training, scoring); only rank 0 writes
    # the run folder, and the others wait for it: one complete folder, no half-written file.
    import subprocess
    import sys

    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(TORCHRUN_CONFIG)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    where = ["--set", f"out_dir={tmp_path / 'runs'}", "--set", f"cache_dir={tmp_path / 'cache'}"]
    out = subprocess.run(
        [*torchrun, "-m", "oversight.cli", "train", str(cfg), *where],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    assert {p.name for p in run.iterdir()} == {
        "config.json",
        "results.json",
        "results.md",
        "results.png",
        "predictions.npz",
        "supervisors.npz",
        "curves.png",
    }
    assert not list((tmp_path / "cache").glob("*.tmp"))
    assert out.stdout.count("All figures:") == 1  # the summary is printed once, by rank 0


@pytest.mark.parametrize(
    ("n", "sizes"), [(33, [33]), (65, [32, 33]), (64, [32, 32]), (34, [32, 2]), (1, [1])]
)
def test_training_batches_never_end_with_a_single_row(n: int, sizes: list[int]) -> None:
    # logconf hardens a batch at its weak labels' quantile: one row is always hardened to false. A
    # last batch of one row is merged into the one before; every row is still seen once an epoch.
    from torch.utils.data import DataLoader

    from w2sg.train import _loader

    rows = list(range(n))
    got = list(_loader(n, 32, shuffle=True, seed=3))
    assert [len(b) for b in got] == sizes and sorted(x for b in got for x in b) == rows
    assert len(_loader(n, 32, shuffle=True, seed=3)) == len(sizes)
    # The shuffle is the plain DataLoader's: same seed, same order, so other runs do not change.
    plain = DataLoader(rows, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(3))
    assert [x for b in got for x in b] == [int(x) for b in plain for x in b]


@pytest.mark.parametrize(
    ("config", "documented"),
    # The run ids the README and docs/results.md cite: new fields at their neutral values (precision
    # auto, grad_accum 1, ...) leave them unchanged, so the documented commands still find the runs.
    [("w2sg-sciq.yaml", "sciq-w2s-d39d0a3200"), ("run-demo.yaml", "run-demo-26051f52f2")],
)
def test_documented_run_ids_still_name_their_runs(config: str, documented: str) -> None:
    import yaml

    from oversight.experiments.run.config import RunConfig
    from oversight.experiments.run.runner import prepare_run_splits
    from w2sg.data import fingerprint
    from w2sg.experiment import prepare_splits

    root = Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((root / "configs" / config).read_text())
    if config.startswith("run-"):
        run = RunConfig.model_validate(raw)
        assert run.run_id(fingerprint(prepare_run_splits(run)[0])) == documented
        return
    cfg = W2SGConfig.model_validate(raw)
    assert cfg.run_id(fingerprint(prepare_splits(cfg))) == documented
    bf16 = cfg.model_copy(update={"strong_train": cfg.strong_train.model_copy(update={"precision": "bf16"})})
    assert bf16.run_id("fp") != cfg.run_id("fp")  # away from its neutral value, a field is in the id
    # seed != 0 now moves inits and data order too: its runs do not reuse a folder made before.
    from w2sg.identity import run_id

    seed1 = cfg.model_copy(update={"seed": 1})
    assert seed1.run_id("fp") != run_id(seed1.name, seed1, "fp")  # the id without the seed's note
