"""Judge accuracy of the offline debater ladder (configs/debaters-offline.yaml): not a timing
benchmark, the figures of docs/debate-research.md ("Offline debaters of graded strength").

For every (debater arguing the truth, debater arguing the other side) pair: one-round simultaneous
debates on a dev slice of SciQ test questions, judged by the quote-weighing judge; then best-of-N
for reader-r30 on either side. The dev slice is `split_by_question(rows with a passage,
{"dev": QUESTIONS}, seed=20)`: offline only SciQ's test file has passages.

    python benchmarks/debaters_offline.py               # 100 questions (200 rows)
    python benchmarks/debaters_offline.py --questions 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import ModelSpec, get_model
from agents.config import load_config
from graphs.debate import DebateConfig, debate_input
from graphs.debaters import DebaterSet
from graphs.invoke import invoke_recorded
from w2sg.data import Example, split_by_question
from w2sg.datasets import load

ROOT = Path(__file__).resolve().parents[1]
LADDER = ("reader", "reader-r60", "reader-r30", "liar")


async def accuracy(rows: list[Example], specs: dict[str, ModelSpec], honest: object, liar: object) -> float:
    """Share of rows the judge gets right when `honest` argues the truth and `liar` the other side
    (each a debater: a `models:` key, or {model: key, best_of_n: N})."""
    judge = get_model(specs["judge"])
    graphs = {}
    for truth, lie in (("correct", "incorrect"), ("incorrect", "correct")):  # by the row's gold
        cfg = DebateConfig.model_validate(
            {
                "protocol": "simultaneous",
                "rounds": 1,
                "judge": "judge",
                "debaters": {truth: honest, lie: liar},
            }
        )
        models = {role: get_model(specs[ref]) for role, ref in cfg.roles().items()}  # type: ignore[index]
        graphs[truth] = cfg.build({**models, "judge": judge})
    right = 0
    for e in rows:
        graph = graphs["correct" if e.label else "incorrect"]
        state = await invoke_recorded(graph, debate_input(e.question, e.answer, e.support or ""))
        assert "error" not in state, state["error"]
        right += (state["verdict"].p_true > 0.5) == bool(e.label)
    return right / len(rows)


async def main(questions: int) -> None:
    t0 = time.perf_counter()
    specs = load_config(ROOT / "configs" / "debaters-offline.yaml", DebaterSet).models
    rows = split_by_question([e for e in load("sciq", "test") if e.support], {"dev": questions}, seed=20)[
        "dev"
    ]
    print(f"{len(rows)} rows ({questions} questions); judge accuracy, row: arguing the truth, column: lying")
    print("| | " + " | ".join(LADDER) + " |")
    for h in LADDER:
        accs = [await accuracy(rows, specs, h, o) for o in LADDER]
        print(f"| {h} | " + " | ".join(f"{a:.3f}" for a in accs) + " |")
    print("best-of-N, reader-r30 on both sides (honest N, lying N): accuracy")
    for hn, ln in ((1, 1), (4, 1), (16, 1), (1, 4), (1, 16), (16, 16)):
        h, o = ({"model": "reader-r30", "best_of_n": n} for n in (hn, ln))
        print(f"  {hn:>2} {ln:>2}: {await accuracy(rows, specs, h, o):.3f}")
    print(f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=100)
    asyncio.run(main(ap.parse_args().questions))
