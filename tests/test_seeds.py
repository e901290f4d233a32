"""Seeds as an axis: per-seed runs are ordinary runs (own folders, reused, shardable), and their
aggregate (mean over seeds, two-level bootstrap over seeds and questions, PGR of the seed means)
is what recomputation from the per-seed predictions gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from cli import w2sg

from agents.names import resolve_model_path
from w2sg.experiment import Sizes, W2SGConfig, run_experiment
from w2sg.metrics import auc, correct, mean_ci, pgr
from w2sg.models import ModelConfig
from w2sg.results import ExperimentResult
from w2sg.seeds import Preds, draw_seeds, load_columns, mean_pgr, run_seeds
from w2sg.train import TrainConfig

N_BOOT = 300
TINY = {"kind": "features", "path": "embedded/tiny-gpt2"}


def seed_column(acc: float, n_questions: int, seed: int) -> Preds:
    """Two rows a question (a true and a false answer); the model is right on a share `acc` of
    the questions (both rows), wrong on the rest, with scores that rank by correctness."""
    rng = np.random.default_rng(seed)
    right = np.repeat(rng.permutation(n_questions) < round(acc * n_questions), 2)
    gold = np.tile([1.0, 0.0], n_questions)
    p = np.where(right, np.where(gold > 0.5, 0.8, 0.2), np.where(gold > 0.5, 0.3, 0.7))
    return Preds(p, gold, np.repeat(np.arange(n_questions), 2), "test")


def width(lo: float, hi: float) -> float:
    return hi - lo


def test_mean_over_seeds_is_exact_and_its_interval_widens_when_seeds_disagree() -> None:
    agree = [{"m": seed_column(0.7, 200, s)} for s in range(3)]
    disagree = [{"m": seed_column(a, 200, s)} for s, a in enumerate([0.55, 0.7, 0.85])]
    acc_a, auc_a = draw_seeds(agree, ["m"], n_boot=N_BOOT)
    acc_d, auc_d = draw_seeds(disagree, ["m"], n_boot=N_BOOT)
    per_seed = [correct(c["m"].p, c["m"].gold).mean() for c in disagree]
    stat = acc_d["m"].stat()
    assert stat.mean.value == pytest.approx(np.mean(per_seed), abs=1e-12)
    assert stat.per_seed == pytest.approx(per_seed) and stat.sd == pytest.approx(np.std(per_seed, ddof=1))
    assert auc_d["m"].stat().mean.value == pytest.approx(
        np.mean([auc(c["m"].p, c["m"].gold) for c in disagree])
    )
    assert stat.mean.lo < stat.mean.value < stat.mean.hi
    # Seeds that disagree: wider than one seed's question-only interval, and than agreeing seeds'.
    one = mean_ci(correct(disagree[1]["m"].p, disagree[1]["m"].gold), disagree[1]["m"].qids, n_boot=N_BOOT)
    agreeing = acc_a["m"].stat().mean
    assert width(stat.mean.lo, stat.mean.hi) > 2 * width(one.lo, one.hi)
    assert width(stat.mean.lo, stat.mean.hi) > 2 * width(agreeing.lo, agreeing.hi)
    assert acc_a["m"].stat().sd == pytest.approx(0.0, abs=1e-12) and auc_a["m"].stat().sd < 0.05


def test_one_seed_gives_the_question_bootstrap_of_that_seed() -> None:
    col = seed_column(0.6, 150, 0)
    acc, _ = draw_seeds([{"m": col}], ["m"], n_boot=N_BOOT, seed=4)
    got = acc["m"].stat()
    # The only seed is drawn every time: what is left is its question resamples (its own stream).
    mine = mean_ci(correct(col.p, col.gold), col.qids, n_boot=N_BOOT, seed=1000 * (4 + 1))
    assert (got.mean.value, got.mean.lo, got.mean.hi) == (mine.value, mine.lo, mine.hi)
    assert np.isnan(got.sd)


def test_pgr_of_seed_means_with_the_same_draws() -> None:
    cols = [
        {
            "floor": seed_column(f, 200, 10 + s),
            "student": seed_column(m, 200, 20 + s),
            "ceiling": seed_column(c, 200, s),
        }
        for s, (f, m, c) in enumerate([(0.55, 0.62, 0.75), (0.6, 0.63, 0.8), (0.57, 0.66, 0.72)])
    ]
    acc, auc_drawn = draw_seeds(cols, ["floor", "student", "ceiling"], n_boot=N_BOOT)
    means = {
        k: np.mean([correct(c[k].p, c[k].gold).mean() for c in cols]) for k in ("floor", "student", "ceiling")
    }
    got = mean_pgr(acc["floor"], acc["student"], acc["ceiling"])
    assert got.value == pytest.approx(pgr(means["floor"], means["student"], means["ceiling"]))
    assert got.lo < got.value < got.hi
    on_auc = mean_pgr(auc_drawn["floor"], auc_drawn["student"], auc_drawn["ceiling"])
    assert on_auc.lo < on_auc.value < on_auc.hi


def tiny_config(tmp_path: Path, **over: object) -> W2SGConfig:
    tiny = ModelConfig(kind="features", path="embedded/tiny-gpt2", max_length=48)
    fast = TrainConfig(lr=1e-3, epochs=1, batch_size=16, eval_every=4, device="cpu")
    return W2SGConfig.model_validate(
        {
            "name": "seeds",
            "sizes": Sizes(weak=12, strong=20, val=8, test=15),
            "weak": tiny,
            "weak_train": fast,
            "strong": tiny.model_copy(update={"pooling": "mean"}),
            "strong_train": fast,
            "label_sources": ["weak", "weak_p_true"],  # a test floor and a strong-split floor
            "n_boot": 200,
            "out_dir": tmp_path / "runs",
            "cache_dir": tmp_path / "cache",
            **over,
        }
    )


def no_training(*args: object, **kwargs: object) -> None:
    raise AssertionError("trained a model where every run folder was complete")


def test_seed_shards_then_the_aggregate_trains_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shards: each seed alone, as `--set seed=N` runs it (no `seeds`).
    shards = {s: run_experiment(tiny_config(tmp_path, seed=s), resolve=resolve_model_path) for s in (0, 1)}
    assert shards[0].run_id != shards[1].run_id
    cfg = tiny_config(tmp_path, seeds=[0, 1])
    with pytest.raises(ValueError, match="seeds: \\[0, 1\\] asks for one run per seed"):
        run_experiment(cfg)
    monkeypatch.setattr("w2sg.experiment.train", no_training)

    def run_one(c: W2SGConfig) -> ExperimentResult:
        return run_experiment(c, resolve=resolve_model_path)

    result = run_seeds(cfg, run_one)
    assert [r.result.run_id for r in result.runs] == [shards[0].run_id, shards[1].run_id]
    agg = tmp_path / "runs" / result.run_id
    assert result.run_id.startswith("seeds-seeds-")
    assert {p.name for p in agg.iterdir()} == {"config.json", "results.json", "results.md", "results.png"}
    # Every figure of the aggregate is what the per-seed predictions give.
    cols = [load_columns(tmp_path / "runs" / shards[s].run_id) for s in (0, 1)]
    for s in result.students:
        name = f"student__{s.source}__{s.loss}"
        accs = [correct(c[name].p, c[name].gold).mean() for c in cols]
        assert s.accuracy.per_seed == pytest.approx(accs)
        own = [
            next(x for x in shards[k].students if (x.source, x.loss) == (s.source, s.loss)) for k in (0, 1)
        ]
        assert s.accuracy.per_seed == pytest.approx([x.accuracy.value for x in own])
        assert s.accuracy.mean.value == pytest.approx(np.mean(accs))
        assert s.auc.per_seed == pytest.approx([auc(c[name].p, c[name].gold) for c in cols])
        floor = [correct(c[f"floor__{s.source}"].p, c[f"floor__{s.source}"].gold).mean() for c in cols]
        ceiling = [correct(c["ceiling"].p, c["ceiling"].gold).mean() for c in cols]
        assert s.pgr.value == pytest.approx(pgr(np.mean(floor), np.mean(accs), np.mean(ceiling)))
        for e in (s.accuracy.mean, s.auc.mean, s.pgr, s.auc_pgr):
            assert e.lo <= e.value <= e.hi
    floors = {f.source: f for f in result.sources}
    assert floors["weak"].floor_split == "test" and floors["weak_p_true"].floor_split == "strong"
    recorded = next(f for f in shards[1].sources if f.source == "weak_p_true")
    assert floors["weak_p_true"].floor.per_seed[1] == pytest.approx(recorded.floor.value)
    table = (agg / "results.md").read_text()
    assert "Seeds aggregate" in table and "Per seed" in table and "| 1 | weak_p_true | xent |" in table
    # The console: every figure column is wide enough for a whole estimate at 80 columns.
    from rich.console import Console

    from oversight.cli.train import seeds_summary, summary
    from w2sg.report import short_estimate

    for table, e in (
        (summary(shards[0], agg), shards[0].students[0].auc),
        (seeds_summary(result, agg), None),
    ):
        console = Console(record=True, width=80)
        console.print(table)
        shown = console.export_text()
        assert max(len(line) for line in shown.splitlines()) <= 80
        first = e or result.students[0].auc.mean
        assert short_estimate(first) in shown
    # A second invocation loads the complete aggregate.
    (agg / "results.md").write_text("sentinel")
    assert run_seeds(cfg, run_one).model_dump_json() == result.model_dump_json()
    assert (agg / "results.md").read_text() == "sentinel"
    # The command prints it: `w2sg train CONFIG --set seeds=[0,1]` over the same folders.
    path = tmp_path / "w2sg.yaml"
    path.write_text(
        yaml.safe_dump(tiny_config(tmp_path).model_dump(mode="json", exclude_unset=True), sort_keys=False)
    )
    stamps = [(tmp_path / "runs" / x.run_id / "results.json").stat().st_mtime_ns for x in shards.values()]
    out = w2sg("train", str(path), "--set", "seeds=[0, 1]")
    assert out.returncode == 0, out.stderr
    assert f"seeds 0, 1 · ceiling {result.ceiling.mean} · AUC {result.ceiling_auc.mean}" in out.stdout
    assert "95% CIs over seeds and questions" in out.stdout and "SD between seeds" in out.stdout
    assert [
        (tmp_path / "runs" / x.run_id / "results.json").stat().st_mtime_ns for x in shards.values()
    ] == stamps


def test_run_with_seeds_aggregates_the_pipeline_runs(tmp_path: Path) -> None:
    from test_pipeline import small

    from oversight.experiments.run.config import RunConfig
    from oversight.experiments.run.runner import run_pipeline

    over = small(tmp_path)
    over["protocols"] = {"blind": over["protocols"]["blind"]}  # scripted: no judge to train
    cfg = RunConfig.model_validate({**over, "ensembles": [], "aggregate": [], "seeds": [0, 1]})
    with pytest.raises(ValueError, match="seeds: \\[0, 1\\] asks for one run per seed"):
        run_pipeline(cfg)
    runs = {}

    def run_one(c: RunConfig) -> ExperimentResult:
        runs[c.seed] = run_pipeline(c, resolve=resolve_model_path)
        return runs[c.seed].experiment

    result = run_seeds(cfg, run_one)
    assert [r.result.run_id for r in result.runs] == [runs[0].run_id, runs[1].run_id]
    from oversight.experiments.run.runner import prepare_run_splits
    from w2sg.data import fingerprint

    for s in (0, 1):  # each seed an ordinary, complete `w2sg run` folder, named as one
        alone = RunConfig.model_validate({**over, "ensembles": [], "aggregate": [], "seed": s})
        assert runs[s].run_id == alone.run_id(fingerprint(prepare_run_splits(alone)[0]))
        assert (tmp_path / "runs" / runs[s].run_id / "results.json").exists()
    blind = next(f for f in result.sources if f.source == "blind")
    assert blind.floor_split == "strong"  # a graph has no test predictions: its floor is unpaired
    own = [next(f for f in runs[s].experiment.sources if f.source == "blind") for s in (0, 1)]
    assert blind.floor.per_seed == pytest.approx([f.floor.value for f in own])
    assert blind.floor_auc.per_seed == pytest.approx([f.floor_auc.value for f in own if f.floor_auc])
    student = next(s for s in result.students if s.source == "blind")
    mine = [next(s for s in runs[k].experiment.students if s.source == "blind") for k in (0, 1)]
    assert student.accuracy.per_seed == pytest.approx([s.accuracy.value for s in mine])
    assert student.auc.per_seed == pytest.approx([s.auc.value for s in mine if s.auc])
    assert (tmp_path / "runs" / result.run_id / "results.md").exists()
    # `w2sg run CONFIG` with seeds prints the aggregate, over the same complete folders.
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_unset=True), sort_keys=False))
    out = w2sg("run", str(path))
    assert out.returncode == 0, out.stderr
    assert f"seeds 0, 1 · ceiling {result.ceiling.mean}" in out.stdout
    assert f"/{result.run_id}/results.md" in "".join(out.stdout.split())  # its folder, named (folded)


def test_run_id_of_a_config_without_seeds_is_the_one_before_seeds_existed() -> None:
    from pydantic import create_model

    from oversight.experiments.run.config import RunConfig
    from w2sg.identity import run_id

    for cls, drop in ((W2SGConfig, {"icl": True}), (RunConfig, {"concurrency": True, "on_failure": True})):
        # before `seeds` (and `methods` and `tracking`, later still: test_methods.py, test_tracking.py)
        later = ("seeds", "methods", "tracking")
        fields = {k: (f.annotation, f) for k, f in cls.model_fields.items() if k not in later}
        old_cls = create_model(cls.__name__, __config__=cls.model_config, **fields)
        if cls is RunConfig:
            from agents.config import HOW_FIELDS

            cfg = cls.model_validate({"protocols": {}, "weak": TINY, "strong": TINY})
            drop = {**drop, "models": {"__all__": HOW_FIELDS}}
        else:
            cfg = cls.model_validate({"weak": TINY, "strong": TINY})
        old = old_cls.model_validate(cfg.model_dump(exclude_unset=True))
        assert cfg.run_id("fp") == run_id(cfg.name, old, "fp", exclude={**drop, "sizes": {"dev"}})
        assert cfg.model_copy(update={"seeds": [0, 1]}).run_id("fp") != cfg.run_id("fp")
