"""Phase 2, `w2sg ladder`: a recursively updated evaluator over a ladder of models (config, runner,
report)."""
