"""Experiments: each a config (deriving from `ExperimentConfig`), a runner and a report.

`run/` is `w2sg run` (the end-to-end experiment), `ladder/` `w2sg ladder` (phase 2),
`tournament/` `w2sg tournament` (cross-play ratings), `grid/` `w2sg grid` (sharded sweeps).
"""
