"""`w2sg leaderboard`: W2SG methods x label sources x losses x datasets x seeds, one `w2sg train`
run per (dataset, seed) cell, sharded like `w2sg grid`, merged into a ranked table with paired
differences against vanilla (config, runner, report)."""
