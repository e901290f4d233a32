"""Debaters, as a debate config names them: a model, or a `DebaterSpec` (best-of-N, critique and
refine against a preference model); per-side debaters (`SideDebaters`); named sets of them for a
tournament (`DebaterSet`). The debate kind, `graphs.debate.DebateConfig`, reads them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, model_validator

from agents.config import Config, ModelRef, ModelSpec, ref_kind
from agents.names import check_model_names


class DebaterSpec(Config):
    """A debater: its model and how it speaks. Best-of-N and critique-and-refine (Khan et al. 2024)
    optimise each turn against a preference model's p(its side); `graphs.bestofn` does it."""

    model: ModelRef = Field(description="a model string, a key of `models:`, or an inline spec")
    best_of_n: int = Field(
        1,
        ge=1,
        description="candidate turns sampled (seeded) per turn; the one the preference model "
        "rates most persuasive for this debater's side is kept",
    )
    critique: int = Field(
        0,
        ge=0,
        description="critique-and-refine rounds per turn: the debater's model critiques the "
        "kept turn, rewrites it, and the rewrite is kept when the preference model rates it higher",
    )
    preference: ModelRef | None = Field(
        None,
        description="the model whose p(side) picks a turn; default: the judge, reading the judge's "
        "prompt (a classifier/<dir> given here reads the trained judge's text pair)",
    )
    temperature: float = Field(
        1.0,
        ge=0.0,
        le=2.0,
        description="sampling temperature of best-of-N candidates and rewrites "
        "(a single turn keeps the debate's temperature)",
    )
    # {prompt} (the turn's prompt as the debater saw it) {draft} {side_claim}
    critique_prompt: str = (
        "{prompt}\n\nA draft of this turn:\n{draft}\n\nYou are a critic. In at most 40 words, say how the "
        "draft could better convince the judge that the proposed answer is {side_claim}."
    )
    # {prompt} {draft} {critique} {side_claim}
    refine_prompt: str = (
        "{prompt}\n\nYour draft:\n{draft}\nA critic's advice:\n{critique}\n\nRewrite your turn, "
        "following the advice where it helps."
    )

    @property
    def optimised(self) -> bool:
        """More than one plain sampled turn: the preference model is called."""
        return self.best_of_n > 1 or self.critique > 0


def _debater_kind(value: Any) -> str | None:
    if isinstance(value, DebaterSpec) or (isinstance(value, dict) and "model" in value):
        return "debater"
    return ref_kind(value)


#: A debater where a config names one: a model (as `ModelRef`), or a `DebaterSpec` mapping
#: ({model: ..., best_of_n: 4, ...}), told apart by its `model:` key.
DebaterRef = Annotated[
    Annotated[str, Tag("name")] | Annotated[ModelSpec, Tag("spec")] | Annotated[DebaterSpec, Tag("debater")],
    Discriminator(
        _debater_kind,
        custom_error_type="debater_ref",
        custom_error_message="a model string, a key of `models:`, a model spec ({name: ..., ...}), "
        "or a debater ({model: ..., best_of_n: N, critique: K, preference: ...})",
    ),
]


def as_debater(ref: DebaterRef) -> DebaterSpec:
    """A plain model reference is a debater that speaks once per turn."""
    return ref if isinstance(ref, DebaterSpec) else DebaterSpec(model=ref)


class DebaterSet(Config):
    """Named debater configurations and the models they call (configs/debaters-offline.yaml): the
    entrants a cross-play tournament draws from, each what a `debater:` field takes."""

    models: dict[str, ModelSpec] = Field(default_factory=dict, description="named model specs")
    debaters: dict[str, DebaterRef] = Field(description="name → a model, or {model, best_of_n, ...}")

    @model_validator(mode="after")
    def _known_models(self) -> DebaterSet:
        names: dict[str, str] = {}
        for name, ref in self.debaters.items():
            spec = as_debater(ref)
            for field, model in (("model", spec.model), ("preference", spec.preference)):
                if isinstance(model, str):
                    names[f"debaters.{name}" + (f".{field}" if isinstance(ref, DebaterSpec) else "")] = model
        check_model_names(names, self.models)
        return self


class SideDebaters(Config):
    """Per-side debaters: each overrides `debater` for the side it argues (consultancy: the
    consultant arguing that side)."""

    correct: DebaterRef | None = None
    incorrect: DebaterRef | None = None
