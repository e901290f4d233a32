"""`results.md` of a `w2sg debaters train` run: one line per round."""

from __future__ import annotations

from pathlib import Path

from oversight.experiments.debaters.results import DebaterTrainResult


def write_report(result: DebaterTrainResult, run_dir: Path) -> None:
    lines = [
        f"# Debater DPO: {result.run_id}",
        "",
        "| round | questions | turns | pairs | DPO loss first → last | reward margin first → last "
        "| s/step | model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result.rounds:
        d = r.dpo
        lines.append(
            f"| {r.round} | {r.questions} | {r.turns} | {r.pairs} | {d.loss_first:.4f} → {d.loss_last:.4f} "
            f"| {d.margin_first:.4f} → {d.margin_last:.4f} | {d.seconds_per_step:.2f} | `{r.model}` |"
        )
    (run_dir / "results.md").write_text("\n".join(lines) + "\n")
