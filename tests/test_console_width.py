"""The console summaries of `w2sg train` / `w2sg run` fit an 80-column terminal: figure cells on one
line each (short intervals, point figures on dev, marks with footnotes), notes wrapped at words;
results.md keeps the full table with the words behind each mark.

The fixtures are real results: SciQ at the reference scale (configs/w2sg-sciq.yaml, 1000 test rows,
a dev split, label sources above the ceiling) and its aggregate over seeds 0-2."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from oversight.cli.train import seeds_summary, summary
from w2sg.report import markdown_table, seeds_table, short_estimate
from w2sg.results import ExperimentResult, SeedsResult

FIXTURES = Path(__file__).parent / "fixtures" / "results"


@pytest.fixture
def result() -> ExperimentResult:
    return ExperimentResult.model_validate_json((FIXTURES / "sciq-dev.json").read_text())


@pytest.fixture
def seeds() -> SeedsResult:
    return SeedsResult.model_validate_json((FIXTURES / "sciq-seeds.json").read_text())


def shown_at_80(renderable: object, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What a terminal with COLUMNS=80 shows (the width rich reads from the environment)."""
    monkeypatch.setenv("COLUMNS", "80")
    console = Console(record=True, force_terminal=False)
    assert console.width == 80
    console.print(renderable, highlight=False)
    return console.export_text().splitlines()


def test_the_summary_fits_80_columns(result: ExperimentResult, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = shown_at_80(summary(result, Path("runs/r")), monkeypatch)
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert "…" not in text  # nothing cropped
    # Each student is two lines, on accuracy then AUC, each figure whole on its line.
    for s in result.students:
        first = next(line for line in lines if short_estimate(s.accuracy) in line)
        assert f"{s.accuracy_dev.value:.3f}" in first
        assert short_estimate(s.auc) in lines[lines.index(first) + 1]
    # PGR above the ceiling is a mark with its footnote; the regime is said in words under it.
    assert "n/a: the supervisor ≥ the ceiling" in text and "(supervisor" not in text
    assert "No weak-to-strong regime for weak_p_true" in text
    assert "runs/r/results.md" in text
    # results.md keeps the full table: three-decimal intervals, the words behind the mark.
    table = markdown_table(result)
    assert "n/a (supervisor ≥ ceiling)" in table and str(result.students[0].accuracy) in table


def test_the_seeds_summary_fits_80_columns(seeds: SeedsResult, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = shown_at_80(seeds_summary(seeds, Path("runs/s")), monkeypatch)
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert "…" not in text
    for s in seeds.students:
        assert short_estimate(s.accuracy.mean) in text and f"SD {s.accuracy.sd:.3f}" in text
    assert "† floor on the strong split" in text and "n/a: the supervisor ≥ the ceiling" in text
    # The notes under it are the seeds report's own (one function renders both).
    assert "the seed-mean ceiling" in text and "the seed-mean ceiling" in seeds_table(seeds)


@pytest.mark.parametrize(
    ("regime", "mark", "words"),
    [("overlap", "¹", "(no gap)"), ("small", "²", "(gap < 0.03)"), ("chance", "³", "(at chance)")],
)
def test_each_mark_has_its_footnote(regime: str, mark: str, words: str) -> None:
    from w2sg.metrics import Estimate
    from w2sg.report import pgr_cell, regime_footnotes

    pgr = Estimate(value=0.4, lo=0.1, hi=0.7, n=100)
    floor = {"overlap": (0.60, 0.55, 0.65), "small": (0.60, 0.59, 0.61)}.get(regime, (0.6, 0.5, 0.7))
    ceiling = Estimate(value=0.62 if regime == "small" else 0.64, lo=0.615, hi=0.7, n=100)
    f = Estimate(value=floor[0], lo=floor[1], hi=floor[2], n=100)
    if regime == "overlap":
        ceiling = Estimate(value=0.64, lo=0.60, hi=0.68, n=100)
    at = regime == "chance"
    cell = pgr_cell(pgr, f, ceiling, short_estimate, at, short=True)
    assert cell == f"0.400 [.10,.70]{mark}"
    assert pgr_cell(pgr, f, ceiling, chance=at).endswith(words)  # results.md says it in words
    assert [line[0] for line in regime_footnotes(cell)] == [mark]
