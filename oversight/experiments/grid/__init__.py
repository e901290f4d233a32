"""`w2sg grid`: judges x debaters x protocols (x datasets), one resumable run folder per cell,
sharded over any scheduler, merged into one table and heatmap (config, runner, report)."""
