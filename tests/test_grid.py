"""`w2sg grid`: shards partition the cells, shards merged give the one-run report, and a killed
grid resumes without redoing a finished cell."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli import ROOT, w2sg

from oversight.experiments.grid.config import GridConfig, shard


def grid_yaml(tmp_path: Path, *, latency: float = 0.0, questions: int = 6) -> Path:
    """2 judges x 2 debaters x 2 protocols (+ blind, one cell per judge) = 10 cells of scripted and
    extractive models: real backends, no weights."""
    text = f"""
name: g
out_dir: {tmp_path / "runs"}
label: {{split: test, questions: {questions}, concurrency: 4}}
models:
  sure:
    name: scripted/sure
    scripted:
      latency_s: {latency}
      rules:
        - {{match: 'v_quote', probs: {{'Yes': 0.9, 'No': 0.1}}}}
        - {{match: '.*', probs: {{'Yes': 0.4, 'No': 0.6}}}}
  coin:
    name: scripted/coin
    scripted: {{latency_s: {latency}, rules: [{{match: '.*', probs: {{'Yes': 0.5, 'No': 0.5}}}}]}}
  reader: {{name: extractive}}
  mute: {{name: scripted/mute, scripted: {{latency_s: {latency}, default_reply: 'No comment.'}}}}
judges: {{sure: sure, coin: coin}}
debaters: {{reader: reader, mute: mute}}
protocols:
  debate: {{kind: debate, protocol: sequential, rounds: 1}}
  consultancy: {{kind: debate, protocol: consultancy, rounds: 1}}
  blind: {{kind: debate, protocol: blind}}
"""
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return path


def load(path: Path) -> GridConfig:
    from agents.config import load_config

    return load_config(path, GridConfig)


def test_shards_partition_the_cells(tmp_path: Path) -> None:
    cells = load(grid_yaml(tmp_path)).cells()
    assert len(cells) == 10 and len({c.id for c in cells}) == 10  # blind: one cell per judge
    for n in (1, 3, 4, 10, 12):
        slices = [shard(cells, f"{i}/{n}") for i in range(1, n + 1)]
        ids = [c.id for s in slices for c in s]
        assert sorted(ids) == sorted(c.id for c in cells)  # disjoint and covering
    with pytest.raises(ValueError, match=r"--shard '3/2': i must be in 1\.\.2"):
        shard(cells, "3/2")
    with pytest.raises(ValueError, match="expected i/n"):
        shard(cells, "half")


def test_shards_merged_give_the_report_of_one_run(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    whole = w2sg("grid", str(grid_yaml(one)))
    assert whole.returncode == 0, whole.stderr
    cfg = grid_yaml(two)
    out = w2sg("grid", str(cfg), "--shard", "1/3")
    assert out.returncode == 0, out.stderr
    assert "4 of 10 cells (shard 1/3): 4 run now" in out.stdout and "--merge" in out.stdout
    early = w2sg("grid", str(cfg), "--merge")  # a merge before every shard is done names the rest
    assert early.returncode == 1 and "6 not finished yet" in early.stdout
    assert "Missing (not finished yet)" in (two / "runs/g/results.md").read_text()
    for i in (2, 3):
        assert w2sg("grid", str(cfg), "--shard", f"{i}/3").returncode == 0
    merged = w2sg("grid", str(cfg), "--merge")
    assert merged.returncode == 0, merged.stderr
    report = (one / "runs/g/results.md").read_text()
    assert report == (two / "runs/g/results.md").read_text()
    assert "10 cells finished, 0 missing" in report and (two / "runs/g/heatmap.png").stat().st_size > 0
    assert report.count("| sure |") == 5 + 4 and "| coin | - | blind | 0.500" in report  # + 4 vs blind
    assert "## Against the blind judge" in report


def test_cells_are_compared_with_their_judges_blind_cell_paired() -> None:
    """A cell right on every row against a blind cell right on half the questions: gain +0.5, a small
    p; a cell identical to the blind one: gain 0, p 1; another judge's cells are never paired."""
    from oversight.experiments.grid.report import vs_blind
    from oversight.experiments.grid.runner import CellResult
    from w2sg.metrics import Estimate

    def cell(judge: str, debater: str, right: list[float]) -> CellResult:
        rows = {f"q{i}-{s}": (f"q{i}", ok) for i, ok in enumerate(right) for s in "ab"}
        acc = Estimate(value=float(sum(right) / len(right)), lo=0, hi=1, n=len(right))
        axes = {
            "dataset": "-",
            "judge": judge,
            "debater": debater,
            "protocol": "p" if debater != "-" else "blind",
        }
        return CellResult(id=judge + debater, axes=axes, kind="label", label_accuracy=acc, ece=0, seconds=0,
                          outcomes=rows)  # fmt: skip

    half = [float(i % 2) for i in range(12)]
    cells = [
        cell("j", "-", half),
        cell("j", "good", [1.0] * 12),
        cell("j", "same", half),
        cell("k", "x", half),
    ]
    got = {v.cell.axes["debater"]: v for v in vs_blind(cells)}
    assert set(got) == {"good", "same"}  # judge k has no blind cell
    # Exact test over the 6 questions where they differ: only the 2 all-one-sign flips are as extreme.
    assert got["good"].gain.value == 0.5 and got["good"].gain.lo > 0 and got["good"].p == 2 / 2**6
    assert got["same"].gain.value == 0 and got["same"].p == 1.0


def test_a_killed_grid_resumes_without_redoing_finished_cells(tmp_path: Path) -> None:
    cfg = grid_yaml(tmp_path, latency=0.02)
    cells_dir = tmp_path / "runs/g/cells"
    proc = subprocess.Popen(
        [sys.executable, "-m", "oversight.cli", "grid", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cells_dir.glob("*/result.json"))) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p: p.stat().st_mtime_ns for p in cells_dir.glob("*/result.json")}
    assert 3 <= len(done) < 10, "killed too late to test resuming"
    out = w2sg("grid", str(cfg))
    assert out.returncode == 0, out.stderr
    assert f"{10 - len(done)} run now, {len(done)} already finished" in out.stdout
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())  # finished cells untouched
    assert len(list(cells_dir.glob("*/result.json"))) == 10


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("run: {}\n", "exactly one of `label:`"),
        ("protocols: {debate: {kind: debate, judge: sure}}\n", "protocols.debate: judge come from"),
        ("protocols: {debate: {kind: debate, rounds: 0}}\n", "protocols.debate: "),
        (
            "protocols: {debate: {kind: debate}}\ndebaters: {reader: nope}\n",
            "cell judge=sure / debater=reader / protocol=debate: ",
        ),
    ],
)
def test_bad_grid_configs_name_the_problem(tmp_path: Path, extra: str, message: str) -> None:
    path = grid_yaml(tmp_path)
    text = path.read_text()
    if extra.startswith("protocols"):
        text = text.split("protocols:")[0]
    if "debaters:" in extra:  # replaces the section (a key written twice is refused)
        text = text.replace("debaters: {reader: reader, mute: mute}\n", "")
    path.write_text(text + extra)
    out = w2sg("grid", str(path))
    assert out.returncode == 2 and out.stderr.count("error:") == 1
    assert message in out.stderr, out.stderr


def test_run_cells_train_a_student_and_report_its_pgr(tmp_path: Path) -> None:
    """Run cells go through `w2sg run` (tiny models, scripted judges): PGR joins the table."""
    tiny = "{kind: features, path: embedded/tiny-gpt2, max_length: 48}"
    fast = "{lr: 1.0e-3, epochs: 2, batch_size: 16, eval_every: 4, device: cpu}"
    text = f"""
name: r
out_dir: {tmp_path / "runs"}
run:
  sizes: {{judge: 12, calib: 8, strong: 20, val: 6, test: 20}}
  weak: {tiny}
  weak_train: {fast}
  strong: {tiny}
  strong_train: {fast}
  n_boot: 100
  cache_dir: {tmp_path / "cache"}
models:
  digits:  # Yes to answers with a digit: a real, weak rule
    name: scripted/digits
    scripted: {{rules: [{{match: 'answer: \\S*\\d', probs: {{'Yes': 0.8, 'No': 0.2}}}}]}}
  reader: {{name: extractive}}
judges: {{digits: digits}}
debaters: {{reader: reader}}
protocols:
  blind: {{kind: debate, protocol: blind}}
  debate: {{kind: debate, protocol: sequential, rounds: 1}}
"""
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    out = w2sg("grid", str(path))
    assert out.returncode == 0, out.stderr
    report = (tmp_path / "runs/r/results.md").read_text()
    assert "| student | PGR |" in report and "2 cells finished, 0 missing" in report
    rows = [line for line in report.splitlines() if line.startswith("| digits |") and "`" in line]
    assert len(rows) == 2 and all(row.count("[") == 3 for row in rows)  # label accuracy, student, PGR


def test_a_cell_that_fails_is_named_and_the_others_finish(tmp_path: Path) -> None:
    """A judge that cannot judge (the plain extractive reader) fails its cells; the rest finish."""
    path = grid_yaml(tmp_path)
    path.write_text(
        path.read_text().replace("judges: {sure: sure, coin: coin}", "judges: {sure: sure, bad: reader}")
    )
    out = w2sg("grid", str(path))
    assert out.returncode == 2 and out.stderr.count("error:") == 1
    assert "5 cells did not finish; rerun to retry them: cell " in out.stderr
    assert "(judge=bad, debater=reader, protocol=debate): 12 rows failed" in out.stderr
    assert len(list((tmp_path / "runs/g/cells").glob("*/result.json"))) == 5  # the `sure` cells


def test_a_datasets_axis_runs_each_cell_on_its_data(tmp_path: Path) -> None:
    """`datasets:` is one more axis: SciQ and a local boolq-format file give cells of their own."""
    import json

    rows = [
        {"question": f"is {w} a colour", "answer": ok, "passage": f"The word {w} names a thing. It is here."}
        for w, ok in (("red", True), ("table", False), ("blue", True), ("chair", False))
    ]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = grid_yaml(tmp_path, questions=2)
    text = path.read_text().replace("judges: {sure: sure, coin: coin}", "judges: {sure: sure}")
    text = text.split("protocols:")[0] + "protocols: {debate: {kind: debate, rounds: 1}}\n"
    path.write_text(text + f"datasets: {{sciq: sciq, mine: {{path: {tmp_path / 'mine.jsonl'}}}}}\n")
    out = w2sg("grid", str(path))
    assert out.returncode == 0, out.stderr
    report = (tmp_path / "runs/g/results.md").read_text()
    assert "| dataset | judge | debater | protocol |" in report
    assert report.count("| sciq | sure |") == 2 and report.count("| mine | sure |") == 2
