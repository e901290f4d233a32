"""`w2sg run`: the end-to-end experiment on a small config (tiny models, a scripted judge, one
trained MiniLM judge), and its config errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml
from cli import w2sg

from agents import ConfigError, load_config
from agents.names import resolve_model_path
from oversight.experiments.run.config import RunConfig
from oversight.experiments.run.runner import prepare_run_splits, run_pipeline
from w2sg.data import DataError
from w2sg.datasets import load_split

TINY = {"kind": "features", "path": "embedded/tiny-gpt2", "max_length": 48}
FAST = {"lr": 1.0e-3, "epochs": 2, "batch_size": 16, "eval_every": 4, "device": "cpu"}


def small(tmp_path: Path, **over: object) -> dict:
    cfg = {
        "name": "e2e",
        "sizes": {"judge": 12, "calib": 8, "strong": 20, "val": 6, "test": 20},
        "models": {
            "reader": {"name": "extractive"},
            # a blind judge that says Yes to every answer with a digit in it: a real, weak rule
            "rule": {
                "name": "scripted/rule",
                "scripted": {
                    "rules": [{"match": r"answer: \S*\d", "probs": {"Yes": 0.8, "No": 0.2}}],
                    "default_reply": "No",
                },
            },
        },
        "protocols": {
            "blind": {"kind": "debate", "protocol": "blind", "judge": "rule"},
            "debate": {
                "kind": "debate",
                "protocol": "sequential",
                "rounds": 1,
                "debater": "reader",
                "judge": "trained",
            },
            "interaction": {"kind": "interaction", "assistant": "reader", "overseer_model": "trained"},
        },
        "judge_training": {"max_length": 64, "train": {**FAST, "lr": 1.0e-4, "epochs": 1}},
        "weak": TINY,
        "weak_train": FAST,
        "strong": {**TINY, "pooling": "mean"},
        "strong_train": FAST,
        "ensembles": [{"method": "bagging", "n": 2}],
        "aggregate": ["average", "dawid_skene"],
        "n_boot": 200,
        "out_dir": str(tmp_path / "runs"),
        "cache_dir": str(tmp_path / "cache"),
    }
    cfg.update(over)
    return cfg


def test_run_end_to_end(tmp_path: Path) -> None:
    cfg = RunConfig.model_validate(small(tmp_path))
    sp, _ = prepare_run_splits(cfg)
    qids = {k: {e.qid for e in v} for k, v in sp.items()}
    names = list(qids)
    for i, a in enumerate(names):  # splits are disjoint by question
        for b in names[i + 1 :]:
            assert not qids[a] & qids[b], (a, b)
    assert all(e.support for k in ("judge", "calib", "strong", "val") for e in sp[k])

    result = run_pipeline(cfg, resolve=resolve_model_path)
    run = tmp_path / "runs" / result.run_id
    assert {
        "results.json",
        "results.md",
        "results.png",
        "pgr.png",
        "cost.png",
        "labels.npz",
        "curves.png",
    } <= {p.name for p in run.iterdir()}
    from w2sg.data import fingerprint

    recorded = json.loads((run / "config.json").read_text())  # the folder knows its data
    assert recorded["data"]["fingerprint"] == fingerprint(sp)
    assert result.run_id == cfg.run_id(fingerprint(sp)) and recorded["config"]["name"] == "e2e"
    kinds = {s.source: s.kind for s in result.sources}
    assert kinds == {
        "weak": "teacher",
        "bagging": "teacher",
        "blind": "oversight",
        "debate": "oversight",
        "interaction": "oversight",
        "agg_average": "aggregate",
        "agg_dawid_skene": "aggregate",
    }
    n_strong = len(sp["strong"])
    for s in result.sources:
        assert s.raw.n == n_strong and (s.calibrated is None) == (s.kind == "aggregate")
        assert (s.tokens_per_label is None) == (s.kind == "teacher")
        assert (s.vs_blind is None) == (s.source == "blind")
    assert {s.source for s in result.experiment.students} == set(kinds)

    # The trained judges learned from the judge split only, and labelled none of it.
    for name in ("debate", "interaction"):
        judge = next(s for s in result.sources if s.source == name).judge
        assert judge is not None and set(judge.qids) == qids["judge"]
        assert judge.protocol == {"debate": "sequential", "interaction": "interaction"}[name]
    # Every oversight label is in the store once: calib + strong + val rows per protocol.
    db = sqlite3.connect(run / "labels.sqlite")
    per = dict(db.execute("SELECT protocol, COUNT(*) FROM labels WHERE status = 'ok' GROUP BY protocol"))
    n_graph = sum(len(sp[k]) for k in ("calib", "strong", "val"))
    assert per == {"blind": n_graph, "sequential": n_graph, "interaction": n_graph}
    # The stored labels are the ones the students learned from, row for row.
    labels = np.load(run / "labels.npz")
    assert labels["debate__strong__cal"].shape == labels["debate__strong"].shape
    assert len(labels["test__ids"]) == len(labels["weak__test"]) == len(sp["test"])
    blind = dict(db.execute("SELECT example_id, p_true FROM labels WHERE protocol = 'blind'"))
    assert [blind[i] for i in labels["strong__ids"]] == labels["blind__strong"].tolist()
    # The scripted rule's label accuracy is what the report says.
    gold = np.array([e.label for e in sp["strong"]])
    acc = float(((labels["blind__strong"] > 0.5) == (gold > 0.5)).mean())
    assert next(s for s in result.sources if s.source == "blind").raw.accuracy.value == pytest.approx(acc)

    # Aggregates out of sample: Dawid-Skene is fitted once on every graph split and applied to
    # each; the average's weights are scored on calib by calibrators fitted on the other folds.
    from oversight.labelling.soft_labels import (
        Calibrator,
        DawidSkene,
        average_weights,
        cross_fit,
        weighted_average,
    )

    combined = ["weak", "bagging", "blind", "debate", "interaction"]
    splits = ("calib", "strong", "val")
    cal = {k: np.stack([labels[f"{s}__{k}__cal"] for s in combined]) for k in splits}
    ds = DawidSkene().fit(np.concatenate([cal[k] for k in splits], axis=1))
    for k in splits:
        assert labels[f"agg_dawid_skene__{k}"] == pytest.approx(ds(cal[k]))
    g = {k: np.array([e.label for e in sp[k]], dtype=float) for k in splits}
    cq = np.array([e.qid for e in sp["calib"]])
    raw = np.stack([labels[f"{s}__calib"] for s in combined])
    w, _ = average_weights(cross_fit(raw, g["calib"], cq, "platt", folds=5, seed=0), g["calib"])
    assert labels["agg_average__strong"] == pytest.approx(weighted_average(cal["strong"], w))
    assert Calibrator("platt").fit(raw[2], g["calib"])(labels["blind__strong"]) == pytest.approx(
        labels["blind__strong__cal"]
    )
    # Intervals resample questions (the label-accuracy CI of a source, from its stored labels).
    from w2sg.metrics import accuracy_ci

    sq = np.array([e.qid for e in sp["strong"]])
    blind_q = next(s for s in result.sources if s.source == "blind").raw.accuracy
    assert blind_q == accuracy_ci(labels["blind__strong"], gold, sq, n_boot=200, seed=0)
    # A trained judge is scored on rows that neither trained nor selected it: the calib split.
    for name in ("debate", "interaction"):
        judge = next(s for s in result.sources if s.source == name).judge
        assert judge is not None and judge.heldout_rows == len(sp["calib"])
        ok = (labels[f"{name}__calib"] > 0.5) == (g["calib"] > 0.5)
        assert judge.heldout_accuracy == pytest.approx(ok.mean())

    table = (run / "results.md").read_text()
    assert "| debate | oversight |" in table and "tokens / label" in table
    assert "calib rows (never used to train or select it)" in table
    assert f"`w2sg web runs/{result.run_id}` serves every label" in table  # the transcript viewer
    # The report names what caps the students' split: the test file's questions with a passage.
    n_passage = len({e.qid for e in load_split(cfg.dataset, "test", seed=cfg.seed) if e.support})
    assert result.passage_questions == n_passage
    assert f"draw from the {n_passage} test-file questions with a passage" in table
    # No dev split: nothing is scored on one, and the report has no dev section.
    e = result.experiment
    assert "dev" not in sp and "dev" not in e.sizes and e.ceiling_dev is None and "dev__ids" not in labels
    assert all(s.floor_dev is None for s in e.sources) and "Validation (dev" not in table
    assert all(s.accuracy_dev is None and s.pgr_dev is None for s in e.students)
    # A complete run is loaded, not recomputed; the judges and the store are reused by a forced one.
    (run / "results.md").write_text("sentinel")
    assert run_pipeline(cfg, resolve=resolve_model_path).model_dump_json() == result.model_dump_json()
    stamp = (run / "judges" / "debate" / "judge.json").stat().st_mtime_ns
    again = run_pipeline(cfg, resolve=resolve_model_path, force=True)
    assert (run / "judges" / "debate" / "judge.json").stat().st_mtime_ns == stamp
    assert [s.raw for s in again.sources] == [s.raw for s in result.sources]


def test_run_dev_split_scores_teachers_students_and_ceiling(tmp_path: Path) -> None:
    from rich.console import Console

    from oversight.cli.train import summary
    from w2sg.metrics import correct, mean_ci

    plain_over = small(tmp_path)
    plain_over["protocols"] = {"blind": plain_over["protocols"]["blind"]}  # scripted: no judge to train
    plain_over["aggregate"] = ["average"]
    cfg = RunConfig.model_validate({**plain_over, "sizes": {**plain_over["sizes"], "dev": 15}})
    sp, _ = prepare_run_splits(cfg)
    qids = {k: {e.qid for e in v} for k, v in sp.items()}
    assert len(qids["dev"]) == 15
    for k in ("judge", "calib", "strong", "val", "test"):  # from the train file, beside test
        assert not qids["dev"] & qids[k], k
    # Drawn after test: without dev every split keeps its questions, and the run keeps its id.
    plain_cfg = RunConfig.model_validate(plain_over)
    plain, _ = prepare_run_splits(plain_cfg)
    assert list(plain) == [k for k in sp if k != "dev"]
    assert all([e.id for e in plain[k]] == [e.id for e in sp[k]] for k in plain)
    from pydantic import Field, create_model

    from agents.config import HOW_FIELDS
    from oversight.experiments.run.config import RunSizes
    from w2sg.identity import run_id

    fields = {k: (f.annotation, f) for k, f in RunSizes.model_fields.items() if k != "dev"}
    old_sizes = create_model("RunSizes", __base__=RunSizes.__base__, **fields)  # RunSizes before `dev`
    old_config = create_model(
        "RunConfig", __base__=RunConfig, sizes=(old_sizes, Field(default_factory=old_sizes))
    )
    old = old_config.model_validate(plain_over)
    how = {"concurrency": True, "on_failure": True, "models": {"__all__": HOW_FIELDS}}
    # (`seeds` and `methods`, at their defaults, came later and are left out like `dev`:
    # test_seeds.py and test_methods.py check those.)
    later = {"seeds": True, "methods": True}
    assert plain_cfg.run_id("fp") == run_id("e2e", old, "fp", exclude={**how, **later})
    assert cfg.run_id("fp") != plain_cfg.run_id("fp")

    result = run_pipeline(cfg, resolve=resolve_model_path)
    e, run = result.experiment, tmp_path / "runs" / result.run_id
    n_dev = len(sp["dev"])
    assert e.sizes["dev"] == n_dev and e.ceiling_dev is not None and e.ceiling_dev.n == n_dev
    # The weak teachers are floored on dev from the p(true) they saved there; the graph (its rows
    # need a passage) and the aggregate over it have no dev floor. Every student is scored on dev.
    labels = np.load(run / "labels.npz")
    assert labels["dev__ids"].tolist() == [e.id for e in sp["dev"]]
    gold, dev_q = np.array([x.label for x in sp["dev"]]), np.array([x.qid for x in sp["dev"]])
    floors = {s.source: s.floor_dev for s in e.sources}
    assert {k for k, v in floors.items() if v is None} == {"blind", "agg_average"}
    for src in ("weak", "bagging"):
        assert floors[src] == mean_ci(correct(labels[f"{src}__dev"], gold), dev_q, n_boot=200, seed=0)
        assert "blind__dev" not in labels and f"{src}__dev__cal" in labels
    for s in e.students:
        assert s.accuracy_dev is not None and s.accuracy_dev.n == n_dev
        assert (s.pgr_dev is None) == (floors[s.source] is None)
    table = (run / "results.md").read_text()
    head = f"Validation (dev split, {n_dev} rows: choose settings here, not on test)"
    assert head in table and "| floor (dev) |" in table and "the ceiling on dev" in table
    assert "No dev predictions for blind, agg_average" in table
    blind = next(s for s in e.students if s.source == "blind")
    assert f"| blind | - | xent | {blind.accuracy_dev} |" in table
    # The console shows the dev ceiling and the students on dev.
    console = Console(record=True, width=300)
    console.print(summary(e, run))
    shown = console.export_text()
    assert f"dev ceiling {e.ceiling_dev}" in shown and "dev: choose settings on these columns" in shown


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    kindless = small(tmp_path)
    del kindless["protocols"]["debate"]["kind"]
    (tmp_path / "kindless.yaml").write_text(yaml.safe_dump(kindless))
    with pytest.raises(
        ConfigError, match=r"kindless\.yaml: invalid config\n  protocols\.debate: .*needs `kind:`"
    ):
        load_config(tmp_path / "kindless.yaml", RunConfig)
    clash = small(tmp_path)
    clash["protocols"]["bagging"] = clash["protocols"].pop("blind")
    (tmp_path / "clash.yaml").write_text(yaml.safe_dump(clash))
    with pytest.raises(ConfigError, match="label source names must be unique"):
        load_config(tmp_path / "clash.yaml", RunConfig)
    out = w2sg("run", str(tmp_path / "clash.yaml"))
    assert out.returncode == 2 and "clash.yaml" in out.stderr
    typo = small(tmp_path)
    typo["protocols"]["debate"]["debater"] = "raeder"
    with pytest.raises(ValueError, match=r"protocols\.debate\.debater: 'raeder' is neither"):
        RunConfig.model_validate(typo)
    asks = small(tmp_path)
    asks["protocols"]["interaction"]["max_followups"] = 1
    with pytest.raises(ValueError, match="cannot ask follow-ups"):
        RunConfig.model_validate(asks)


def test_shipped_run_configs_load() -> None:
    for path in sorted(Path("configs").glob("run-*.yaml")):
        cfg = load_config(path, RunConfig)
        assert cfg.protocols, path
        json.dumps(cfg.model_dump(mode="json"))


def test_a_protocol_that_fails_on_some_rows_fails_the_run_or_is_dropped(tmp_path: Path, server) -> None:  # type: ignore[no-untyped-def]
    """A prompted judge whose server refuses 10% of requests (HTTP 400, not retried): with
    `on_failure: fail` the run stops after every graph has labelled, naming the rows; with `drop`
    (same run folder and store) the questions left unlabelled leave every source, and the report
    names them with the verdicts' scoring methods and the models' retries and failures."""
    server.reset(fault_rate=0.1, fault_kinds=["400"], seed=5)
    over = small(tmp_path)
    over["models"]["flaky"] = {"name": f"openai/fake@{server.url}", "retry": {"max_attempts": 1}}
    over["protocols"] = {
        "blind": {"kind": "debate", "protocol": "blind", "judge": "rule"},
        "flaky": {"kind": "debate", "protocol": "blind", "judge": "flaky"},
    }
    over["aggregate"] = []
    cfg = RunConfig.model_validate(over)
    with pytest.raises(RuntimeError, match=r"protocol 'flaky': \d+ of 68 rows have no label after retries"):
        run_pipeline(cfg, resolve=resolve_model_path)
    dropping = RunConfig.model_validate({**over, "on_failure": "drop"})
    sp, _ = prepare_run_splits(cfg)
    from w2sg.data import fingerprint

    assert dropping.run_id(fingerprint(sp)) == cfg.run_id(fingerprint(sp))  # same folder and store
    server.control(fault_rate=1.0)  # the rows that failed fail again (the labelled ones are kept)
    result = run_pipeline(dropping, resolve=resolve_model_path)
    flaky = next(s for s in result.sources if s.source == "flaky")
    dropped = set(result.dropped_questions)
    assert flaky.failed and flaky.methods == {"logprobs": 68 - 2 * len(dropped)}  # both rows of each
    assert flaky.usage["judge"]["failures"] == len(flaky.failed)
    qid = {e.id: e.qid for k in ("calib", "strong", "val") for e in sp[k]}
    assert dropped == {qid[i] for i in flaky.failed}
    strong = {e.qid for e in sp["strong"]} - dropped
    assert result.experiment.sizes["strong"] == 2 * len(strong) < 40
    report = (tmp_path / "runs" / result.run_id / "results.md").read_text()
    assert f"on_failure: drop: {len(dropped)} questions" in report
    assert "| flaky | logprobs 100% |" in report


def two_choice_folder(tmp_path: Path) -> Path:
    """Two-choice questions in the HF `choices` + `answerKey` schema with no passage (QuaRTz's
    shape): a train and a test file."""

    def rows(lo: int, hi: int) -> list[dict]:
        return [
            {
                "id": f"q{i}",
                "question": f"Heating gas sample {i} in a closed flask makes its pressure do what?",
                "choices": {"text": [f"rise ({i})", f"fall ({i})"], "label": ["A", "B"]},
                "answerKey": "A",
            }
            for i in range(lo, hi)
        ]

    data = tmp_path / "two-choice"
    data.mkdir()
    for name, (lo, hi) in {"train": (0, 40), "test": (100, 160)}.items():
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(lo, hi)))
    return data


def passage_free(tmp_path: Path, **protocols: dict) -> dict:
    """`small` on the two-choice data: the given protocols and a weak teacher, no ensembles."""
    over = small(tmp_path)
    over["models"]["helper"] = {"name": "scripted/helper", "scripted": {"default_reply": "STANCE: correct"}}
    over |= {"dataset": {"path": str(two_choice_folder(tmp_path))}, "ensembles": [], "aggregate": []}
    over["protocols"] = protocols
    return over


BLIND = {"kind": "debate", "protocol": "blind", "judge": "rule"}


def test_run_on_data_without_passages(tmp_path: Path) -> None:
    """With no protocol that needs a passage (a blind judge; an assistant that sees none), the graph
    splits are drawn from every test question; `w2sg run` runs end to end."""
    brief = {"kind": "interaction", "assistant": "helper", "overseer_model": "rule"}
    over = passage_free(tmp_path, blind=BLIND, brief={**brief, "assistant_sees_context": False})
    cfg = RunConfig.model_validate(over)
    sp, passage_questions = prepare_run_splits(cfg)
    assert passage_questions is None and not any(e.support for v in sp.values() for e in v)
    graph = {k: len({e.qid for e in sp[k]}) for k in ("judge", "calib", "strong", "val")}
    assert graph == {"judge": 12, "calib": 8, "strong": 20, "val": 6}  # of the test file's 60
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(over))
    out = w2sg("run", str(tmp_path / "run.yaml"))
    assert out.returncode == 0, out.stderr
    run = next((tmp_path / "runs").glob("e2e-*"))
    result = json.loads((run / "results.json").read_text())
    assert {s["source"] for s in result["sources"]} == {"weak", "blind", "brief"}
    assert all(s["raw"]["n"] == 40 for s in result["sources"])  # 20 strong questions, 2 rows each
    assert result["passage_questions"] is None
    report = (run / "results.md").read_text()
    assert "with a passage" not in report  # nothing capped the graph splits but the data's size


def test_run_refuses_a_protocol_that_needs_a_passage_on_data_without_one(tmp_path: Path) -> None:
    """Before any model runs, naming the protocol, the settings that need the passage, the data,
    how many questions have one, and the way out; never smaller sizes, which cannot help."""
    consult = {"kind": "debate", "protocol": "consultancy", "rounds": 1, "debater": "helper", "judge": "rule"}
    over = passage_free(tmp_path, blind=BLIND, consultancy=consult)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(over))
    out = w2sg("run", str(tmp_path / "run.yaml"))
    assert out.returncode == 2
    err = " ".join(out.stderr.split())
    data = tmp_path / "two-choice"
    assert f"none of the 60 questions in {data} test has a passage, and protocol consultancy " in err
    assert "(debaters_see_context, verify_quotes) needs a passage: drop it, or set those settings " in err
    assert "smaller" not in err and "blind" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()
    # The way out the message gives works: those settings off, the consultant runs without one.
    quiet = {**consult, "debaters_see_context": False, "verify_quotes": False}
    sp, _ = prepare_run_splits(RunConfig.model_validate({**over, "protocols": {"c": quiet}}))
    assert len({e.qid for e in sp["strong"]}) == 20
    # Some passages, too few: smaller sizes are offered.
    cfg = RunConfig.model_validate(small(tmp_path, sizes={"judge": 400, "calib": 50, "strong": 10, "val": 5}))
    with pytest.raises(DataError) as e:
        prepare_run_splits(cfg)
    n_passage, msg = len({x.qid for x in load_split(cfg.dataset, "test", seed=0) if x.support}), str(e.value)
    assert f"but there are {n_passage} questions with a passage in sciq test (of its 500 questions)" in msg
    assert "give smaller counts" in msg


def test_which_questions_the_graph_splits_draw_from(tmp_path: Path) -> None:
    """Data with passages (SciQ): the graph splits come from its questions with one, whatever the
    protocols, so every config on it labels the same questions (the shipped configs' run ids are
    pinned in test_w2sg_train.py); data without passages: from all its questions."""
    both = RunConfig.model_validate(small(tmp_path))
    sp, n_passage = prepare_run_splits(both)
    test_rows = load_split(both.dataset, "test", seed=0)
    assert n_passage == len({e.qid for e in test_rows if e.support}) < len({e.qid for e in test_rows})
    assert all(e.support for k in ("judge", "calib", "strong", "val") for e in sp[k])
    alone = RunConfig.model_validate(small(tmp_path, protocols={"blind": BLIND}))
    sp_alone, _ = prepare_run_splits(alone)
    ids = {k: [e.id for e in v] for k, v in sp.items()}
    assert {k: [e.id for e in v] for k, v in sp_alone.items()} == ids
    free, n_free = prepare_run_splits(RunConfig.model_validate(passage_free(tmp_path, blind=BLIND)))
    graph = ("judge", "calib", "strong", "val")
    assert n_free is None and sum(len({e.qid for e in free[k]}) for k in graph) == 46
