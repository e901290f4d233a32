"""Every report states its regime in words: a weak-to-strong gap beyond the intervals, a gap within
them (PGR mostly noise), or a supervisor at least as good as the ceiling (PGR undefined)."""

from __future__ import annotations

from w2sg.metrics import Estimate
from w2sg.report import pgr_cell, regime, regime_lines


def est(value: float, lo: float, hi: float) -> Estimate:
    return Estimate(value=value, lo=lo, hi=hi, n=100)


CEILING = est(0.70, 0.66, 0.74)


def test_regime_needs_the_ceiling_above_the_supervisor_beyond_both_intervals() -> None:
    assert regime(est(0.55, 0.51, 0.59), CEILING) == "gap"
    assert regime(est(0.64, 0.60, 0.68), CEILING) == "overlap"  # higher, but the intervals overlap
    assert regime(est(0.70, 0.66, 0.74), CEILING) == "above"
    assert regime(est(0.90, 0.87, 0.93), CEILING) == "above"


def test_cells_and_sentences_say_which() -> None:
    pgr = est(0.3, 0.1, 0.5)
    assert pgr_cell(pgr, est(0.55, 0.51, 0.59), CEILING) == "0.300 [0.100, 0.500]"
    assert pgr_cell(pgr, est(0.64, 0.60, 0.68), CEILING) == "0.300 [0.100, 0.500] (no gap)"
    assert pgr_cell(pgr, est(0.9, 0.87, 0.93), CEILING) == "n/a (supervisor ≥ ceiling)"
    lines = regime_lines(
        {"weak": est(0.55, 0.51, 0.59), "blind": est(0.64, 0.60, 0.68), "debate": est(0.9, 0.87, 0.93)},
        CEILING,
    )
    assert lines[0].startswith("Weak-to-strong gap for weak: the ceiling (0.700 [0.660, 0.740]) is above")
    assert lines[1].startswith("No gap beyond the intervals for blind:") and "mostly noise" in lines[1]
    assert lines[2].startswith("No weak-to-strong regime for debate: the supervisor is at least as accurate")
    assert regime_lines({"weak": est(0.55, 0.51, 0.59)}, CEILING)[0].startswith("Weak-to-strong gap")
