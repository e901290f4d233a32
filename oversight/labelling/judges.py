"""Trained judges (DESIGN.md, Lang et al. 2025): a small classifier (MiniLM-L6 by default)
fine-tuned on a gold judge-training split to read question + answer, then what the protocol
showed the judge (the transcript with tagged quotes; nothing for the blind judge). Trained once per
protocol on the same rows, so the blind judge and the debate judge get equal training.

The result is a directory that `classifier/<dir>` loads as a model, so graphs use it like any judge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from agents import Model, ModelSpec, closing_all, get_model, wrap
from agents.backends.classifier import PAIR_SEP, save_classifier
from agents.backends.scripted import ScriptedBackend
from agents.config import resolve_spec
from graphs.invoke import invoke_once
from graphs.spec import GraphSpec
from graphs.types import GraphState
from w2sg.data import Example, split_by_question
from w2sg.models import ModelConfig, SeqClassifier
from w2sg.progress import track
from w2sg.tracking import Tracker, write_curves
from w2sg.train import TrainConfig, predict, seed_everything, train

log = logging.getLogger(__name__)


def judge_train_config(**over: object) -> TrainConfig:
    """The one judge-training default, of `w2sg run` (`judge_training.train`) and `w2sg judge train`
    alike; `over` sets fields (seed, epochs, device). Chosen on held-out judge-training questions:
    at lr 5e-5 for 3 epochs the judges stayed at chance (loss 0.69); 1e-4 for 5 epochs learns."""
    base = {"lr": 1e-4, "epochs": 5, "batch_size": 16, "eval_every": 15, "warmup_frac": 0.1, "device": "cpu"}
    return TrainConfig.model_validate(base | over)


class JudgeInfo(BaseModel):
    path: Path
    protocol: str
    base: str
    rows: dict[str, int]
    val_accuracy: float = Field(
        description="on the judge-training questions that picked its checkpoint (optimistic)"
    )
    heldout_accuracy: float | None = Field(
        None, description="on rows used neither to train nor to select it, against gold"
    )
    heldout_rows: int | None = None
    max_length: int = Field(description="tokens per input pair; the classifier backend serves with the same")
    qids: list[str] = Field(description="every question it was trained or selected on: never label these")


async def collect_transcripts(
    cfg: GraphSpec,
    speaker: Model | Mapping[str, Model] | None,
    rows: Sequence[Example],
    *,
    concurrency: int = 32,
) -> list[GraphState]:
    """Run the graph on every row (its support passage as the privileged context) with `speaker`
    in the speaking role (debaters, consultant, assistant), or a model for each role but the judge
    (per-side debaters, preference models: `speaker_models`). The verdict is not needed to train a
    judge, so a scripted stand-in judges here."""
    roles = cfg.roles()
    given = dict(speaker) if isinstance(speaker, Mapping) else {cfg.SPEAKER: speaker} if speaker else {}
    if missing := [r for r in roles if r != cfg.JUDGE and r not in given]:
        raise ValueError(f"this graph needs a model for {', '.join(missing)}")
    if cfg.speakers_consult_judge:  # they would be optimised against the stand-in below
        raise ValueError(
            "the debaters are optimised against the judge being trained: give them a `preference` model"
        )
    stand_in = wrap(ScriptedBackend("scripted/no-judge"))
    models = {role: given.get(role, stand_in) for role in roles}
    graph = cfg.build(models)  # type: ignore[arg-type]
    gate = asyncio.Semaphore(concurrency)

    async def one(e: Example) -> GraphState:
        async with gate:
            state = await invoke_once(graph, cfg.start(e), None)
        progress.advance()
        return state

    with track(f"{cfg.protocol_name} transcripts to train a judge on", len(rows), unit="rows") as progress:
        return list(await asyncio.gather(*(one(e) for e in rows)))


async def transcripts_to_judge(
    cfg: GraphSpec,
    rows: Sequence[Example],
    models: dict[str, ModelSpec] | None = None,
    *,
    concurrency: int = 32,
) -> list[GraphState]:
    """`collect_transcripts` with every role's model but the judge's (`speaker_models`: per-side
    debaters and preference models too), built from `models:` and closed when done."""
    async with closing_all(speaker_models(cfg, models)) as speakers:
        return await collect_transcripts(cfg, speakers, rows, concurrency=concurrency)


def speaker_models(cfg: GraphSpec, models: dict[str, ModelSpec] | None = None) -> dict[str, Model]:
    """A model for each role of `cfg` but the judge's: what `collect_transcripts` runs."""
    # The judge's may be no model yet (`trained`): only the others are resolved.
    refs = {role: ref for role, ref in cfg.roles().items() if role != cfg.JUDGE}
    return {role: get_model(resolve_spec(ref, models)) for role, ref in refs.items()}


def judge_examples(cfg: GraphSpec, rows: Sequence[Example], states: Sequence[GraphState]) -> list[Example]:
    """The judge's text pair(s) for each row, exactly as `classifier/<dir>` will receive them,
    with the gold label (a debate with position swap: both presentation orders)."""
    return [
        _pair_example(e, f"{e.id}-{suffix}", text)
        for e, state in zip(rows, states, strict=True)
        for suffix, text in cfg.judge_texts(state, PAIR_SEP)
    ]


def _pair_example(e: Example, new_id: str, text: str) -> Example:
    first, _, second = text.partition(PAIR_SEP)
    return e.model_copy(update={"id": new_id, "question": first, "answer": second})


def train_judge(
    cfg: GraphSpec,
    rows: Sequence[Example],
    states: Sequence[GraphState],
    *,
    base_path: str,
    out_dir: str | Path,
    train_cfg: TrainConfig | None = None,
    val_frac: float = 0.2,
    test_frac: float = 0.0,
    max_length: int = 256,
    seed: int = 0,
    tracker: Tracker | None = None,
) -> JudgeInfo:
    """Fine-tune the judge on gold labels of most questions, select its checkpoint on `val_frac`
    of them, and score it on `test_frac` more that neither trained nor selected it (0: the caller
    scores it elsewhere, as `w2sg run` does on its calib split); save it, with the curves.png of
    its training (and its curves to `tracker`, `w2sg.tracking`)."""
    examples = judge_examples(cfg, rows, states)
    n_q = len({e.qid for e in examples})
    n_val = max(1, round(val_frac * n_q))
    n_test = round(test_frac * n_q)
    sizes = {"train": n_q - n_val - n_test, "val": n_val} | ({"test": n_test} if n_test else {})
    sp = split_by_question(examples, sizes, seed=seed)
    seed_everything(seed)
    model = SeqClassifier(base_path, ModelConfig(kind="seq_cls", path=base_path, max_length=max_length))
    tcfg = train_cfg or judge_train_config(seed=seed)
    gold = {k: [float(e.label) for e in v] for k, v in sp.items()}
    stage = f"train the {cfg.protocol_name} judge ({len(sp['train'])} rows)"
    name = f"{cfg.protocol_name} judge"
    res = train(
        model,
        sp["train"],
        gold["train"],
        sp["val"],
        gold["val"],
        tcfg,
        stage=stage,
        tracker=tracker,
        name=name,
    )
    val_acc, test_acc = (
        float(np.mean((predict(model, sp[k]) > 0.5) == (np.array(gold[k]) > 0.5))) if k in sp else None
        for k in ("val", "test")
    )
    path = save_classifier(model.model, model.tokenizer, out_dir)
    info = JudgeInfo(
        path=path,
        protocol=cfg.protocol_name,
        base=base_path,
        rows={k: len(v) for k, v in sp.items()},
        val_accuracy=val_acc,
        heldout_accuracy=test_acc,
        heldout_rows=len(sp["test"]) if "test" in sp else None,
        max_length=max_length,
        qids=sorted({e.qid for e in examples}),
    )
    (path / "judge.json").write_text(info.model_dump_json(indent=2))
    write_curves({name: res.history}, Path(path) / "curves.png")
    log.info("judge for %s: val accuracy %.3f, saved to %s", info.protocol, val_acc, path)
    return info
