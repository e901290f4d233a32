"""The end-to-end experiment, `w2sg run`: config, runner, result records, report."""
