"""`w2sg tournament`: ratings move the right way (fitted on matches with a known order of
strength, and on a scripted tournament with a known winner), intervals, win matrix, judge
accuracy by who argues the truth, and a rerun redoes no debate."""

from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli import ROOT, w2sg
from label_runs import count_labels

from oversight.experiments.tournament.ratings import (
    Match,
    accuracy_by_debater,
    against_reference,
    bradley_terry_elo,
    estimates,
    judge_accuracy,
    openskill_ratings,
    win_matrix,
)

PLAYERS = ["strong", "middle", "weak"]


def simulated(questions: int = 60, seed: int = 0) -> list[Match]:
    """Cross-play with Bradley-Terry strengths 2 > 1 > 0: each ordered pair twice per question."""
    strength = {"strong": 2.0, "middle": 1.0, "weak": 0.0}
    rng = random.Random(seed)
    out = []
    for q in range(questions):
        for a in PLAYERS:
            for b in PLAYERS:
                if a == b:
                    continue
                for _ in range(2):
                    win = rng.random() < 1 / (1 + math.exp(strength[b] - strength[a]))
                    truthful = a if rng.random() < 0.5 else b
                    right = float((a if win else b) == truthful)
                    out.append(Match(str(q), a, b, float(win), truthful, right))
    return out


def test_ratings_order_the_players_by_strength() -> None:
    matches = simulated()
    mu = openskill_ratings(matches, PLAYERS, orders=4)
    elo = bradley_terry_elo(matches, PLAYERS)
    assert mu["strong"] > mu["middle"] > mu["weak"]
    assert elo["strong"] > elo["middle"] > elo["weak"]
    assert abs(sum(elo.values()) / 3 - 1000) < 1e-6
    # one logit of strength is 400 / ln 10 = 174 Elo points; the virtual draws shrink it a little
    assert 100 < elo["strong"] - elo["middle"] < 250 and 100 < elo["middle"] - elo["weak"] < 250


def test_ratings_do_not_depend_on_the_order_matches_are_listed() -> None:
    matches = simulated()
    mu = openskill_ratings(matches, PLAYERS, orders=8, seed=3)
    again = openskill_ratings(list(reversed(matches)), PLAYERS, orders=8, seed=3)
    assert all(abs(mu[p] - again[p]) < 0.5 for p in PLAYERS)  # tau=0 and averaged orders: no drift


def test_intervals_cover_the_estimate_and_separate_strong_from_weak() -> None:
    matches = simulated()
    est = estimates(matches, lambda m: bradley_terry_elo(m, PLAYERS), n_boot=100, seed=0)
    assert all(e.lo <= e.value <= e.hi and e.n == 60 for e in est.values())
    assert est["weak"].hi < est["strong"].lo
    few = estimates(simulated(questions=6), lambda m: bradley_terry_elo(m, PLAYERS), n_boot=100, seed=0)
    assert few["strong"].hi - few["strong"].lo > est["strong"].hi - est["strong"].lo  # fewer questions, wider


def test_win_matrix_and_judge_accuracy() -> None:
    matches = [
        Match("q1", "a", "b", 1.0, "a", 1.0),  # a argued the truth and won: the judge was right
        Match("q1", "b", "a", 0.0, "b", 0.0),  # b argued the truth, a won: the judge was wrong
        Match("q2", "a", "b", 0.5, "a", 0.5),  # a draw
    ]
    wm = win_matrix(matches, ["a", "b"])
    assert wm["a"]["b"] == pytest.approx(2.5 / 3) and wm["b"]["a"] == pytest.approx(0.5 / 3)
    assert wm["a"]["a"] is None
    acc = judge_accuracy(matches, {"a": 30.0, "b": 20.0})
    assert acc == {"all": 0.5, "stronger_truthful": 0.75, "stronger_lying": 0.0}
    by = accuracy_by_debater(matches, ["a", "b"])
    assert by == {"a|truth": 0.75, "b|lie": 0.75, "b|truth": 0.0, "a|lie": 0.0}


def test_against_reference_separates_help_from_hurt() -> None:
    """r1's honesty helps the judge (0.5 → 1.0 against r0) more than its lies hurt it (0.5 → 0.25);
    r2's matches count only against r0, never against r1; self-play is its own figure."""
    m = [Match(f"q{i}", "r0", "r0", 1.0, "r0", float(i < 2)) for i in range(4)]  # r0 self-play: 0.5
    m += [Match(f"q{i}", "r1", "r1", 1.0, "r1", 1.0) for i in range(4)]  # r1 self-play: 1.0
    m += [Match(f"q{i}", "r1", "r0", 1.0, "r1", 1.0) for i in range(4)]  # r1 honest against r0: right
    m += [Match(f"q{i}", "r0", "r1", 1.0, "r0", float(i == 0)) for i in range(4)]  # r1 lies: 1 of 4 right
    m += [Match(f"q{i}", "r2", "r0", 1.0, "r2", 0.5) for i in range(4)]  # r2 honest against r0: draws
    m += [Match(f"q{i}", "r0", "r2", 1.0, "r0", 0.5) for i in range(4)]
    m += [Match(f"q{i}", "r2", "r1", 0.0, "r2", 0.0) for i in range(4)]  # not against r0: left out
    got = against_reference(m, ["r0", "r1", "r2"])
    assert got["r0|self"] == 0.5 and got["r1|self"] == 1.0
    assert got["r1|honest"] == 1.0 and got["r1|lying"] == 0.25
    assert got["r1|help"] == 0.5 and got["r1|hurt"] == 0.25 and got["r1|net"] == 0.25
    assert got["r2|honest"] == 0.5 and got["r2|help"] == 0.0 and got["r2|net"] == 0.0
    assert "r0|help" not in got


def tournament_yaml(tmp_path: Path, *, latency: float = 0.0, questions: int = 8) -> Path:
    """A scripted tournament with a known order: `strong` always brings evidence, `coin` half the
    time, `weak` never; the judge sides with whoever alone brought evidence (both or neither: 0.5)."""
    text = f"""
name: t
out_dir: {tmp_path / "runs"}
questions: {questions}
n_boot: 50
models:
  strong: {{name: scripted/strong, scripted: {{latency_s: {latency}, default_reply: EVIDENCE.}}}}
  coin:
    name: scripted/coin
    scripted: {{latency_s: {latency}, rules: [{{match: '.*', replies: [EVIDENCE., Nothing.]}}]}}
  weak: {{name: scripted/weak, scripted: {{latency_s: {latency}, default_reply: Nothing.}}}}
  judge:
    name: scripted/judge
    scripted:
      rules:
        - {{match: 'is correct\\): EVIDENCE.*is incorrect\\): EVIDENCE', probs: {{'Yes': 0.5, 'No': 0.5}}}}
        - {{match: 'is incorrect\\): EVIDENCE.*is correct\\): EVIDENCE', probs: {{'Yes': 0.5, 'No': 0.5}}}}
        - {{match: 'is correct\\): EVIDENCE', probs: {{'Yes': 0.9, 'No': 0.1}}}}
        - {{match: 'is incorrect\\): EVIDENCE', probs: {{'Yes': 0.1, 'No': 0.9}}}}
        - {{match: '.*', probs: {{'Yes': 0.5, 'No': 0.5}}}}
debaters: {{weak: weak, coin: coin, strong: strong}}
judge: judge
"""
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return path


def test_a_scripted_tournament_rates_the_known_winner_first(tmp_path: Path) -> None:
    out = w2sg("tournament", str(tournament_yaml(tmp_path)))
    assert out.returncode == 0, out.stderr
    assert "(192 run now)" in out.stdout  # 6 ordered pairs x 16 rows x 2 speaking positions
    (run_dir,) = (tmp_path / "runs").iterdir()
    r = json.loads((run_dir / "results.json").read_text())
    mu = {p: e["value"] for p, e in r["rating"].items()}
    assert mu["strong"] > mu["coin"] > mu["weak"]
    assert r["elo"]["strong"]["value"] > r["elo"]["coin"]["value"] > r["elo"]["weak"]["value"]
    assert r["rating"]["weak"]["hi"] < r["rating"]["strong"]["lo"]  # intervals apart
    assert r["win_rate"]["strong"]["weak"] == 1.0 and r["win_rate"]["weak"]["strong"] == 0.0
    assert r["win_rate"]["strong"]["strong"] is None
    # evidence decides, not truth: the judge is right when the stronger debater argues the truth
    ja = r["judge_accuracy"]
    assert ja["stronger_truthful"]["value"] > 0.5 > ja["stronger_lying"]["value"]
    report = (run_dir / "results.md").read_text()
    assert report.index("| strong |") < report.index("| coin |") < report.index("| weak |")
    assert (run_dir / "accuracy-vs-rating.png").stat().st_size > 0
    # a rerun loads the finished folder; --force plays again from the store: no debate is rerun
    again = w2sg("tournament", str(tournament_yaml(tmp_path)))
    assert "is complete; loaded it" in again.stdout and "(loaded)" in again.stdout
    # A results.json cut short: the error names the file and the way out.
    done = run_dir / "results.json"
    done.write_text(done.read_text()[:100])
    broken = w2sg("tournament", str(tournament_yaml(tmp_path)))
    assert broken.returncode == 2 and "Traceback" not in broken.stderr, broken.stderr
    assert f"error: {done}: not a finished result" in broken.stderr and "--force" in broken.stderr
    forced = w2sg("tournament", str(tournament_yaml(tmp_path)), "--force")
    assert forced.returncode == 0 and "(0 run now)" in forced.stdout
    assert json.loads((run_dir / "results.json").read_text())["rating"] == r["rating"]


def test_a_killed_tournament_resumes_from_its_store(tmp_path: Path) -> None:
    cfg = tournament_yaml(tmp_path, latency=0.01)
    proc = subprocess.Popen(
        [sys.executable, "-m", "oversight.cli", "tournament", str(cfg)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = None
    deadline = time.time() + 120
    while time.time() < deadline and (store is None or count_labels(store) < 60):
        store = next((tmp_path / "runs").glob("*/labels.sqlite"), None)
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert store is not None
    kept = count_labels(store)
    assert 60 <= kept < 192, "killed too late to test resuming"
    out = w2sg("tournament", str(cfg))
    assert out.returncode == 0, out.stderr
    assert f"({192 - kept} run now)" in out.stdout  # only the debates the kill cut off
    assert count_labels(store) == 192


def test_bad_tournament_configs_name_the_problem(tmp_path: Path) -> None:
    path = tournament_yaml(tmp_path)
    text = path.read_text()
    path.write_text(
        text.replace("debaters: {weak: weak, coin: coin, strong: strong}", "debaters: {weak: weak}")
    )
    out = w2sg("tournament", str(path))
    assert out.returncode == 2 and "debaters: a tournament needs at least 2, got 1" in out.stderr
    path.write_text(text.replace("judge: judge\n", "judge: judge\ngraph: {judge: judge}\n"))
    assert "graph: judge are set by each match" in w2sg("tournament", str(path)).stderr
    path.write_text(text.replace("judge: judge\n", "judge: judge\ngraph: {protocol: consultancy}\n"))
    assert "cross-play needs a two-sided debate, not 'consultancy'" in w2sg("tournament", str(path)).stderr
    path.write_text(text.replace("{weak: weak,", "{weak: wek,"))
    assert "debaters.weak: 'wek' is neither a key of `models:`" in w2sg("tournament", str(path)).stderr


def test_failed_debates_are_named_and_retried_by_a_rerun(tmp_path: Path) -> None:
    """A judge that cannot judge (the plain extractive reader) fails every debate: every match-up
    still plays, the error names them, nothing is reported, and a rerun retries them."""
    path = tournament_yaml(tmp_path)
    path.write_text(path.read_text().replace("judge: judge\n", "judge: extractive\n"))
    out = w2sg("tournament", str(path))
    assert out.returncode == 2 and out.stderr.count("error:") == 1
    assert "debates failed after their retries (weak vs coin (correct first): 16;" in out.stderr
    assert "strong vs coin (incorrect first): 16)" in out.stderr and "rerun to retry them" in out.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not (run_dir / "results.json").exists()
    again = w2sg("tournament", str(path))
    assert again.returncode == 2 and "(the 0 debates that ended are kept" in again.stderr
