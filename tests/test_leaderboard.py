"""`w2sg leaderboard`: methods x label sources x datasets x seeds as `w2sg train` cells, sharded
and merged to the same report, resumed without redoing finished cells, with a ranked table whose
paired differences against vanilla find a method that must beat it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import oversight.cli  # noqa: F401  (registers the commands)
from agents import ConfigError, load_config
from oversight.cli.app import app
from oversight.experiments.leaderboard.config import LeaderboardConfig, shipped_methods

ROOT = Path(__file__).resolve().parents[1]
TINY = {"kind": "features", "path": "embedded/tiny-gpt2", "max_length": 48, "pooling": "mean"}
TRAIN = {"lr": 1e-2, "epochs": 5, "batch_size": 16, "eval_every": 4, "device": "cpu"}
SHIPPED = ["vanilla", "confident_only", "probe_relabel", "probe_filter", "s2s"]
CONFIDENT = {"kind": "confident_only", "share": 0.25}


def invoke(*args: str) -> tuple[int, str]:
    """The CLI in this process (the cells' runs are fast: a subprocess would cost more)."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout + result.stderr


def planted(path: Path, n: int = 120, flip: float = 0.7) -> dict[str, object]:
    """A local JSONL (one true and one false answer a question, learnable from the answer word)
    whose recorded `weak_p_true` labels are wrong on a share `flip` of the questions, but less
    sure there (0.25 / 0.75) than where right (0.98 / 0.02): a student of all the labels learns
    mostly the wrong rule; one of the confident quarter learns only right labels."""
    flipped = np.random.default_rng(0).permutation(n) < round(flip * n)
    with path.open("w") as f:
        for i in range(n):
            for answer, gold in (("blue", 1), ("green", 0)):
                p = (0.25 if gold else 0.75) if flipped[i] else (0.98 if gold else 0.02)
                row = {"question": f"Fact {i}: the clear sky at noon is", "answer": answer, "label": gold}
                f.write(json.dumps({**row, "weak_p_true": p}) + "\n")
    spec = {"format": "binarized", "label_columns": ["weak_p_true"], "split": {"test": 0.3}}
    return {"path": str(path), **spec}


def board_yaml(tmp_path: Path, out: str, **over: object) -> Path:
    """SciQ (the shared files) and the planted file, seeds 0 and 1, vanilla and confident_only."""
    base = {
        "name": "lb",
        "sizes": {"weak": 12, "strong": 40, "val": 12, "test": 30},
        "weak": TINY,
        "weak_train": TRAIN,
        "strong": TINY,
        "strong_train": TRAIN,
        "label_sources": ["weak_p_true"],
        "n_boot": 200,
        "cache_dir": str(tmp_path / "cache"),  # shared by every board of a test: features once
    }
    cfg = {
        "name": "board",
        "out_dir": str(tmp_path / out),
        "base": base,
        "datasets": ["sciq", planted(tmp_path / "planted.jsonl")],
        "seeds": [0, 1],
        "methods": ["vanilla", CONFIDENT],
        **over,
    }
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One unsharded board: every cell, then the report."""
    tmp = tmp_path_factory.mktemp("board")
    code, out = invoke("leaderboard", str(board_yaml(tmp, "whole")))
    assert code == 0, out
    return tmp / "whole" / "board"


def test_shards_merged_give_the_report_of_one_run(whole: Path, tmp_path: Path) -> None:
    cfg = board_yaml(tmp_path, "sharded")
    early = invoke("leaderboard", str(cfg), "--report")
    assert early[0] == 1 and "4 cells not finished yet" in early[1]
    for i in (1, 2):
        code, out = invoke("leaderboard", str(cfg), "--shard", f"{i}/2")
        assert code == 0 and "2 of 4 cells (shard" in out, out
    code, out = invoke("leaderboard", str(cfg), "--report")
    assert code == 0, out
    board = tmp_path / "sharded" / "board"
    for name in ("leaderboard.json", "leaderboard.md"):
        assert (board / name).read_text() == (whole / name).read_text()
    assert (board / "leaderboard.png").stat().st_size > 1000


def test_a_killed_board_resumes_without_redoing_finished_cells(
    whole: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = board_yaml(tmp_path, "resumed")
    assert invoke("leaderboard", str(cfg), "--shard", "1/2")[0] == 0
    code, out = invoke("leaderboard", str(cfg), "--report")
    missing = (tmp_path / "resumed" / "board" / "leaderboard.md").read_text()
    assert code == 1 and "dataset=sciq, seed=1" in missing, out
    ran: list[int] = []
    import w2sg.experiment

    real = w2sg.experiment.run_experiment

    def counted(c: object, **kw: object) -> object:
        ran.append(c.seed)  # type: ignore[attr-defined]
        return real(c, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(w2sg.experiment, "run_experiment", counted)
    code, out = invoke("leaderboard", str(cfg))
    assert code == 0 and "2 run now, 2 already finished" in out, out
    assert ran == [1, 1]  # shard 1/2 ran seed 0 of each dataset; only the other two ran now
    assert invoke("leaderboard", str(cfg))[1].count("0 run now, 4 already finished") == 1
    assert ran == [1, 1]
    got = json.loads((tmp_path / "resumed" / "board" / "leaderboard.json").read_text())
    assert got == json.loads((whole / "leaderboard.json").read_text())


def test_a_method_that_drops_the_planted_wrong_labels_ranks_above_vanilla(whole: Path) -> None:
    result = json.loads((whole / "leaderboard.json").read_text())
    rows = {(r["dataset"], r["method"]): r for r in result["rows"]}
    assert {d for d, _ in rows} == {"sciq", "planted"}  # the registry's set and a local file
    assert result["runs"].keys() == {"sciq", "planted"} and all(
        len(seeds) == 2 for seeds in result["runs"].values()
    )
    confident, vanilla = rows["planted", "confident_only"], rows["planted", "vanilla"]
    assert confident["rank"] == 1 and vanilla["rank"] == 2
    assert confident["pgr"]["value"] > vanilla["pgr"]["value"]
    diff = confident["vs_vanilla"]
    assert diff["value"] == pytest.approx(confident["pgr"]["value"] - vanilla["pgr"]["value"])
    assert 0 < diff["lo"] <= diff["value"] <= diff["hi"]  # paired: the interval excludes 0
    assert vanilla["vs_vanilla"] is None
    assert confident["accuracy"]["per_seed"] == pytest.approx(
        [json.loads(p.read_text())["students"][1]["accuracy"]["value"] for p in _planted_runs(whole, result)]
    )
    md = (whole / "leaderboard.md").read_text()
    # A supervisor wrong on 70 % of questions is worse than chance: the report reads no regime
    # there (PGR is in the JSON, not in the table) and ranks by accuracy, confident_only first.
    group = md.split("## planted · weak_p_true · xent", 1)[1]
    assert group.lstrip().startswith("No weak-to-strong regime (the supervisor or the ceiling is at chance")
    assert "| 1 | confident_only |" in group


def _planted_runs(board: Path, result: dict[str, object]) -> list[Path]:
    """The planted dataset's `w2sg train` results.json, in seed order."""
    runs = result["runs"]["planted"]  # type: ignore[index]
    return [board / "runs" / runs[str(s)] / "results.json" for s in (0, 1)]


def test_methods_default_to_every_shipped_one_and_vanilla_is_always_there(tmp_path: Path) -> None:
    assert [m.kind for m in shipped_methods()] == SHIPPED
    cfg = LeaderboardConfig.model_validate({"base": ROOT / "configs" / "w2sg-sciq.yaml", "methods": ["s2s"]})
    assert [m.label for m in cfg.methods] == ["vanilla", "s2s"]
    cells = cfg.cells()
    assert [(c.dataset, c.seed) for c in cells] == [("sciq", 0), ("sciq", 1), ("sciq", 2)]
    assert all(c.config.out_dir == Path("runs/leaderboard/runs") and c.config.seeds is None for c in cells)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"seedz": [0]}, r"seedz: Extra inputs are not permitted \(allowed here: .*seeds"),
        ({"seeds": [1, 1]}, "seeds has duplicates"),
        ({"methods": ["no_such_method"]}, "unknown method 'no_such_method'"),
        ({"base": {"weak": TINY, "strong": TINY, "sizez": {}}}, r"base\.sizez: Extra inputs"),
    ],
)
def test_bad_board_configs_name_the_field(tmp_path: Path, extra: dict[str, object], message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"base": "w2sg.yaml", **extra}))
    with pytest.raises(ConfigError, match=message):
        load_config(path, LeaderboardConfig)


def test_a_bad_field_of_a_base_given_by_path_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "w2sg.yaml").write_text(yaml.safe_dump({"weak": TINY, "strong": TINY, "lossez": ["xent"]}))
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump({"base": "w2sg.yaml"}))
    cfg = load_config(path, LeaderboardConfig)  # a base by path is read when the cells are made
    with pytest.raises(ConfigError, match=r"w2sg\.yaml: invalid config\n  lossez: Extra inputs"):
        cfg.cells()


def test_the_shipped_config_validates_and_points_at_the_sciq_base() -> None:
    cfg = load_config(ROOT / "configs" / "leaderboard-sciq.yaml", LeaderboardConfig)
    assert cfg.base == ROOT / "configs" / "w2sg-sciq.yaml" and cfg.seeds == [0, 1, 2]
    assert [m.kind for m in cfg.methods] == SHIPPED
    cells = cfg.cells()
    assert len(cells) == 3 and cells[0].config.sizes.dev == 0.1  # settings are chosen on dev


def _row(method: str, source: str, acc: float, pgr: float, regime: str) -> object:
    from oversight.experiments.leaderboard.runner import BoardRow
    from w2sg.metrics import Estimate
    from w2sg.results import SeedStat

    def est(x: float) -> Estimate:
        return Estimate(value=x, lo=x - 0.01, hi=x + 0.01, n=100)

    stat = SeedStat(mean=est(acc), sd=0.0, per_seed=[acc])
    return BoardRow(
        source=source, loss="xent", method=method, accuracy=stat, auc=stat, pgr=est(pgr),
        auc_pgr=est(pgr), dataset="d", seeds=[0], regime=regime,
    )  # fmt: skip


def test_pgr_is_read_only_where_there_is_a_weak_to_strong_gap() -> None:
    """Where the supervisor is at least as accurate as the ceiling, PGR divides by a negative gap
    (a better student reads as a lower PGR): such a group ranks by accuracy, says why, stays out
    of the overall ranking and the plot."""
    from oversight.experiments.leaderboard.report import report_md
    from oversight.experiments.leaderboard.runner import LeaderboardResult, ranked, ranking

    rows = ranked(
        [
            _row("vanilla", "gap", 0.60, 0.20, "gap"),
            _row("s2s", "gap", 0.58, 0.10, "gap"),
            _row("vanilla", "above", 0.66, 2.5, "above"),
            _row("s2s", "above", 0.64, 3.5, "above"),  # the higher PGR, the worse student
        ]
    )
    by = {(r.source, r.method): r.rank for r in rows}
    assert by[("gap", "vanilla")] == 1 and by[("above", "vanilla")] == 1 and by[("above", "s2s")] == 2
    board = ranking(rows)
    assert [m.method for m in board] == ["vanilla", "s2s"] and {m.groups for m in board} == {1}
    assert board[1].mean_pgr == pytest.approx(0.10)  # 3.5 of the gapless group is not in the mean
    md = report_md(
        LeaderboardResult(name="x", n_boot=100, runs={"d": {0: "r"}}, rows=rows, ranking=board, missing=[])
    )
    assert "No weak-to-strong regime (the supervisor is at least as accurate" in md
    assert "3.500" not in md and "2.500" not in md
