"""One DPO round (TRL `DPOTrainer` + a peft LoRA adapter) on preference pairs, and what it saves:
the adapter (`adapter-rK/`) and the merged model (`model-rK/`), the copy `hf/<run>/model-rK` loads
through the plain hf backend, so any config can name a trained debater. Each round trains a fresh
adapter on the previous round's merged model, with that model (the adapter off) as DPO's reference:
expert iteration, each round's policy anchored to the last. TRL is imported lazily (extra `debaters`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agents.backends.embedded import CHATML_TEMPLATE
from oversight.experiments.debaters.config import DPOSettings
from oversight.experiments.debaters.results import DPOFigures
from w2sg.tracking import NullTracker, Tracker
from w2sg.train import resolve_device, resolve_precision

log = logging.getLogger(__name__)


class Pair(BaseModel):
    """One preference pair from one best-of-N turn: the judge's favourite and least favourite."""

    row: str = Field(description="the dataset row the debate was on")
    side: str
    prompt: str = Field(description="the turn's prompt, sent as one user message")
    chosen: str
    rejected: str
    chosen_p: float = Field(description="the judge's p(side) with the chosen turn in place")
    rejected_p: float


def trl_modules() -> tuple[Any, Any]:
    """(trl, peft), or a clear error naming the extra that installs them."""
    try:
        import peft
        import trl
    except ImportError as e:
        raise ImportError(
            f"`w2sg debaters train` needs TRL and peft: pip install 'w2sg[debaters]' ({e})"
        ) from None
    return trl, peft


def load_policy(source: str | Path, settings: DPOSettings) -> tuple[Any, Any]:
    """The model a round starts from and its tokenizer, with the chat template the hf backend uses."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source)
    if not tok.chat_template:  # as agents.backends.hf does: debaters were prompted through ChatML
        tok.chat_template = CHATML_TEMPLATE
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(source)
    return model, tok


def dataset(pairs: Sequence[Pair]) -> Any:
    """Conversational pairs: TRL applies the tokenizer's chat template, as the debate did."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": p.prompt}],
                "chosen": [{"role": "assistant", "content": p.chosen}],
                "rejected": [{"role": "assistant", "content": p.rejected}],
            }
            for p in pairs
        ]
    )


def check_lengths(tok: Any, pairs: Sequence[Pair], max_length: int) -> None:
    """TRL drops a pair whose prompt alone fills `max_length` (no answer token is left to learn
    from); when that leaves none, say so rather than fail inside the trainer."""
    texts = [tok.apply_chat_template([{"role": "user", "content": p.prompt}], tokenize=False) for p in pairs]
    lengths = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
    if min(lengths) >= max_length:
        raise ValueError(
            f"dpo.max_length: every pair's prompt is at least {min(lengths)} tokens, so none fits in "
            f"{max_length}; raise dpo.max_length"
        )


def forward_logs(tracker: Tracker, model: str) -> Any:
    """A transformers callback that sends each logged step (loss, reward margin, ...) to `tracker`
    as `model`'s curves, live."""
    from transformers import TrainerCallback

    class Forward(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            numbers = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
            if numbers:
                tracker.log(model, state.global_step, numbers)

    return Forward()


def train_dpo(
    source: str | Path,
    pairs: Sequence[Pair],
    settings: DPOSettings,
    out: Path,
    tag: str,
    *,
    seed: int,
    tracker: Tracker | None = None,
) -> DPOFigures:
    """Train a LoRA adapter with DPO on `pairs` from `source`; save `out/adapter-<tag>` and the
    merged `out/model-<tag>`. `tracker` gets every logged step as the curves of `dpo-<tag>`."""
    trl, peft = trl_modules()
    model, tok = load_policy(source, settings)
    check_lengths(tok, pairs, settings.max_length)
    device = resolve_device(settings.device)
    half = resolve_precision(settings.precision, device)
    args = trl.DPOConfig(
        output_dir=str(out / f"trainer-{tag}"),
        beta=settings.beta,
        learning_rate=settings.lr,
        max_steps=settings.steps,
        per_device_train_batch_size=settings.batch_size,
        max_length=settings.max_length,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=seed,
        use_cpu=device == "cpu",
        bf16=str(half) == "torch.bfloat16",
        fp16=str(half) == "torch.float16",
        disable_tqdm=True,
    )
    lora = peft.LoraConfig(
        r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.0, task_type="CAUSAL_LM"
    )
    trainer = trl.DPOTrainer(
        model=model,
        args=args,
        train_dataset=dataset(pairs),
        processing_class=tok,
        peft_config=lora,
        callbacks=[forward_logs(tracker or NullTracker(), f"dpo-{tag}")],
    )
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    logs = [h for h in trainer.state.log_history if "loss" in h]
    trainer.model.save_pretrained(out / f"adapter-{tag}")
    merged = trainer.model.merge_and_unload()
    merged.save_pretrained(out / f"model-{tag}")
    tok.save_pretrained(out / f"model-{tag}")
    margin = "rewards/margins"
    return DPOFigures(
        pairs=len(pairs),
        steps=settings.steps,
        loss_first=logs[0]["loss"],
        loss_last=logs[-1]["loss"],
        margin_first=logs[0].get(margin, 0.0),
        margin_last=logs[-1].get(margin, 0.0),
        seconds_per_step=seconds / settings.steps,
    )
