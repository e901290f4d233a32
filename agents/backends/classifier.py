"""A trained judge as a model: a fine-tuned sequence classifier (e.g. MiniLM-L6) whose
`choice_probs` over two choices are its class probabilities (class 1 = the first choice, "Yes").

The judge's input is the last user message; when it holds `PAIR_SEP`, the two sides are fed as a
text pair (question + answer, then what the protocol showed the judge), the way it was trained.
Calls are batched dynamically like the hf backend's. It cannot generate text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agents.backends.batching import DynamicBatcher
from agents.config import ModelSpec
from agents.errors import FatalModelError
from agents.types import ChoiceProbs, Completion, GenerateParams, Message, Usage

PAIR_SEP = "\n<<<judge-input-segment>>>\n"


def classifier_dir(name: str) -> Path | None:
    """The folder a `classifier/<dir>` model name loads; None for a model of another provider."""
    provider, _, rest = name.partition("/")
    return Path(rest) if provider == "classifier" else None


class ClassifierBackend:
    def __init__(
        self, name: str, path: str | Path, *, max_batch_size: int = 32, max_length: int | None = None
    ):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if not Path(path).is_dir():
            raise FatalModelError(f"{name}: {path} is not a directory holding a saved classifier")
        self.name = name
        self.default_concurrency = 4 * max_batch_size
        self.not_checkable = {"generate": "a trained classifier judge: it scores, it cannot generate"}
        # Serve with the truncation the judge was trained with (judge.json), else the model's limit.
        meta = Path(path) / "judge.json"
        trained = json.loads(meta.read_text()).get("max_length") if meta.exists() else None
        self.max_length = max_length or trained or 512
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
        if self.model.config.num_labels != 2:
            raise FatalModelError(
                f"{name}: expected a 2-class classifier, {path} has {self.model.config.num_labels}"
            )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"clf-{name}")
        self.batcher: DynamicBatcher[tuple[str, str | None], tuple[float, int]] = DynamicBatcher(
            self._score_batch, self._executor, max_batch_size=max_batch_size
        )

    def _score_batch(self, rows: list[tuple[str, str | None]]) -> list[tuple[float, int]]:
        import torch

        firsts = [a for a, _ in rows]
        seconds = [b or "" for _, b in rows] if any(b is not None for _, b in rows) else None
        enc = self.tokenizer(
            firsts, seconds, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            p = torch.softmax(self.model(**enc).logits.float(), -1)[:, 1].tolist()
        lengths = enc["attention_mask"].sum(1).tolist()
        return list(zip(p, lengths, strict=True))

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        raise FatalModelError(f"{self.name} is a trained classifier judge: it scores, it cannot generate")

    async def choice_probs(self, messages: Sequence[Message], choices: Sequence[str]) -> ChoiceProbs:
        if len(choices) != 2:
            raise FatalModelError(
                f"{self.name}: a binary classifier scores exactly 2 choices, got {list(choices)}"
            )
        t0 = time.perf_counter()
        text = next((m.content for m in reversed(messages) if m.role == "user"), "")
        first, _, second = text.partition(PAIR_SEP)
        p, n_tokens = await self.batcher.submit((first, second if PAIR_SEP in text else None))
        return ChoiceProbs(
            probs={choices[0]: p, choices[1]: 1.0 - p},
            method="classifier",
            usage=Usage(input_tokens=n_tokens, output_tokens=0),
            seconds=time.perf_counter() - t0,
            model=self.name,
        )

    async def aclose(self) -> None:
        self.batcher.close()  # else its idle worker is destroyed pending when the loop moves on
        self._executor.shutdown(wait=True)


def save_classifier(model: object, tokenizer: object, path: str | Path) -> Path:
    """Save a fine-tuned HF sequence classifier so that `classifier/<path>` loads it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)  # type: ignore[attr-defined]
    tokenizer.save_pretrained(path)  # type: ignore[attr-defined]
    return path


def from_spec(spec: ModelSpec) -> ClassifierBackend:
    """The `classifier` provider's factory (agents.providers): `classifier/<dir>`."""
    return ClassifierBackend(spec.name, classifier_dir(spec.name) or spec.name)
