"""Classifiers that map Examples to (B, 2) logits. Each turns rows into unpadded inputs once
(`tokenize`), pads a batch of them (`collate`) and maps the batch to logits (`forward`), so one
training loop serves them all and never tokenizes inside its step loop.

- `SeqClassifier`: HF sequence classification, fine-tuned end to end (e.g. MiniLM as weak model).
- `LMHeadClassifier`: a causal LM's backbone + a linear head on the last non-pad token; the
  backbone can be frozen or LoRA-adapted (peft) for large models.
- `FeatureHead`: a linear head on frozen features computed once and cached (`w2sg.features`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from w2sg.config import Config
from w2sg.data import Example
from w2sg.features import cached_features, lm_text, pool


class LoraConfig(Config):
    r: int = Field(8, ge=1, description="adapter rank")
    alpha: int = Field(16, ge=1, description="adapter scale is alpha / r")
    # 0, peft's own default: a dropout on each adapted layer's input is one more kernel and a copy of
    # the activations per layer, which made LoRA steps dearer than full fine-tuning on a GPU.
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"


class ModelConfig(Config):
    kind: Literal["seq_cls", "lm_head", "features"] = Field(
        description="seq_cls: fine-tune a sequence classifier; lm_head: causal LM + linear head; "
        "features: linear head on cached frozen features of a causal LM"
    )
    path: str = Field(description="model directory, hub id, or embedded/<minilm|smollm2|tiny-gpt2>")
    max_length: int = Field(128, ge=8, description="tokens per row, longer rows are truncated")
    pooling: Literal["last", "mean"] = "last"
    freeze_backbone: bool = Field(False, description="lm_head only: train the head alone")
    lora: LoraConfig | None = Field(None, description="lm_head only: LoRA adapters (needs peft)")
    with_support: bool = Field(False, description="seq_cls: append the support passage to the answer")
    hidden: int = Field(0, ge=0, description="features only: 0 = linear head, else an MLP of this width")
    layers: list[int] = Field(
        default_factory=lambda: [-1],
        min_length=1,
        description="features only: hidden states to pool (0 = embeddings, -1 = the last layer); "
        "several are concatenated. A linear probe often reads a task better from a middle layer.",
    )

    def model_refs(self) -> dict[str, tuple[str, str]]:
        """field → (name, "path"): what `agents.names.check_config_models` resolves."""
        return {"path": (self.path, "path")}


Inputs = dict[str, torch.Tensor]  # one row unpadded (1-D tensors), or a padded batch (B, ...)


def pad_batch(items: Sequence[Inputs], pad_values: dict[str, int]) -> Inputs:
    """Right-pad the rows' 1-D tensors to the batch's longest row, key by key (`pad_values`: the
    pad of each key, 0 for any other), exactly as a tokenizer's `padding=True` would."""
    return {
        k: torch.nn.utils.rnn.pad_sequence(
            [it[k] for it in items], batch_first=True, padding_value=pad_values.get(k, 0)
        )
        for k in items[0]
    }


class Classifier(nn.Module):
    """What the training loop needs of a model: rows → unpadded inputs once (`tokenize`), a batch
    of them padded (`collate`), then `forward(**batch) -> (B, 2) logits`."""

    def tokenize(self, examples: Sequence[Example]) -> list[Inputs]:
        raise NotImplementedError

    def collate(self, items: Sequence[Inputs]) -> Inputs:
        raise NotImplementedError

    def encode(self, examples: Sequence[Example]) -> Inputs:
        """A padded batch of `examples`, ready for `forward`."""
        return self.collate(self.tokenize(examples))

    def enable_checkpointing(self) -> None:
        """Recompute activations in the backward pass instead of keeping them (less memory, ~1/3
        more compute); the same gradients."""
        raise ValueError(
            f"gradient_checkpointing needs a transformer backbone; {type(self).__name__} has none"
        )


def _tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "right"  # pooling and `pad_batch` read the last non-pad token from the mask
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _rows(enc: Any, keys: Sequence[str]) -> list[Inputs]:
    """A tokenizer's unpadded lists of ids → one dict of 1-D tensors per row."""
    return [
        {k: torch.tensor(enc[k][i], dtype=torch.long) for k in keys} for i in range(len(enc["input_ids"]))
    ]


def _checkpointing(model: Any) -> None:
    # Non-reentrant: works when no input requires grad (frozen embeddings under LoRA), and restores
    # the RNG state so recomputed dropout masks match the first pass.
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


class SeqClassifier(Classifier):
    def __init__(self, path: str | Path, cfg: ModelConfig):
        super().__init__()
        from transformers import AutoModelForSequenceClassification

        self.cfg = cfg
        self.tokenizer = _tokenizer(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=2, dtype=torch.float32
        )
        self.model.config.pad_token_id = self.tokenizer.pad_token_id

    def tokenize(self, examples: Sequence[Example]) -> list[Inputs]:
        if not examples:
            return []
        second = [
            f"{e.answer} {self.tokenizer.sep_token or ''} {e.support}"
            if self.cfg.with_support and e.support
            else e.answer
            for e in examples
        ]
        enc = self.tokenizer(
            [e.question for e in examples], second, truncation=True, max_length=self.cfg.max_length
        )
        return _rows(enc, [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc])

    def collate(self, items: Sequence[Inputs]) -> Inputs:
        return pad_batch(items, {"input_ids": self.tokenizer.pad_token_id})

    def enable_checkpointing(self) -> None:
        _checkpointing(self.model)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**inputs).logits


class LMHeadClassifier(Classifier):
    def __init__(self, path: str | Path, cfg: ModelConfig):
        super().__init__()
        from transformers import AutoModel

        self.cfg = cfg
        self.tokenizer = _tokenizer(path)
        self.backbone = AutoModel.from_pretrained(path, dtype=torch.float32)
        if cfg.lora is not None:
            try:
                from peft import LoraConfig as PeftLora
                from peft import get_peft_model
            except ImportError:
                raise ValueError("model.lora needs the `peft` package: pip install peft") from None
            lora = PeftLora(
                r=cfg.lora.r,
                lora_alpha=cfg.lora.alpha,
                lora_dropout=cfg.lora.dropout,
                target_modules=cfg.lora.target_modules,
            )
            self.backbone = get_peft_model(self.backbone, lora)
        elif cfg.freeze_backbone:
            self.backbone.requires_grad_(False)
        self.head = nn.Linear(self.backbone.config.hidden_size, 2)
        nn.init.zeros_(self.head.weight)  # start at p = 0.5: the first steps follow the labels only
        nn.init.zeros_(self.head.bias)

    def tokenize(self, examples: Sequence[Example]) -> list[Inputs]:
        if not examples:
            return []
        enc = self.tokenizer([lm_text(e) for e in examples], truncation=True, max_length=self.cfg.max_length)
        return _rows(enc, ["input_ids", "attention_mask"])

    def collate(self, items: Sequence[Inputs]) -> Inputs:
        return pad_batch(items, {"input_ids": self.tokenizer.pad_token_id})

    def enable_checkpointing(self) -> None:
        _checkpointing(self.backbone)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # use_cache=False: a classifier never decodes, so a key/value cache is memory for nothing.
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state  # (B, T, H)
        # Pool first, then float: only the (B, H) rows the head reads leave the autocast dtype.
        return self.head(pool(hidden, attention_mask, self.cfg.pooling).float())


class FeatureHead(Classifier):
    """Linear (or one-hidden-layer) head on frozen features. `features` maps example id → (H,)
    tensor; inputs are standardised with the training rows' mean and std, which keeps one
    learning rate good for all."""

    def __init__(self, features: dict[str, torch.Tensor], train_ids: Sequence[str], hidden: int = 0):
        super().__init__()
        self.features = features
        x = torch.stack([features[i] for i in train_ids])
        self.register_buffer("mu", x.mean(0))
        self.register_buffer("sd", x.std(0) + 1e-6)
        h = x.shape[1]
        self.head = (
            nn.Sequential(nn.Linear(h, hidden), nn.GELU(), nn.Linear(hidden, 2))
            if hidden
            else nn.Linear(h, 2)
        )

    def tokenize(self, examples: Sequence[Example]) -> list[Inputs]:
        return [{"x": self.features[e.id]} for e in examples]

    def collate(self, items: Sequence[Inputs]) -> Inputs:
        return {"x": torch.stack([it["x"] for it in items])}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((x - self.mu) / self.sd)


def build_classifier(
    cfg: ModelConfig,
    path: str | Path,
    *,
    train: Sequence[Example],
    all_examples: Sequence[Example] = (),
    cache_dir: str | Path = "runs/cache",
    device: str = "cpu",
) -> Classifier:
    """`train` sets the feature standardisation; `all_examples` are every row the model will see."""
    if cfg.kind == "seq_cls":
        return SeqClassifier(path, cfg)
    if cfg.kind == "lm_head":
        return LMHeadClassifier(path, cfg)
    # all_examples first: every bag asks for the same rows in one order, so a cold cache computes
    # them in one pass, batched alike, whichever subset is trained on.
    rows = list({e.id: e for e in [*all_examples, *train]}.values())
    feats = cached_features(
        path,
        rows,
        cache_dir,
        pooling=cfg.pooling,
        max_length=cfg.max_length,
        device=device,
        layers=cfg.layers,
    )
    return FeatureHead({e.id: f for e, f in zip(rows, feats, strict=True)}, [e.id for e in train], cfg.hidden)
