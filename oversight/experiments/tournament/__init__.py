"""`w2sg tournament`: cross-play debates between debater configurations, rated (config, runner,
ratings, report)."""
