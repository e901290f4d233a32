"""The one provider registry: a model string's prefix (`hf/...`, `openai/...`) → how to build its
backend and which `ModelSpec` options section it takes. Config validation, `get_model` and the
config checks all read this table; a new provider is one `@provider` function (or one
`register_provider` call from outside the package), as inspect_ai's `@modelapi` does.

Factories import their backends lazily, so importing this module (and `agents`) stays torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agents.config import ModelSpec
    from agents.protocol import ModelAPI

Factory = Callable[["ModelSpec"], "ModelAPI"]


@dataclass(frozen=True)
class Provider:
    factory: Factory
    options: str | None = None  # the ModelSpec field holding its options (None: it takes none)


PROVIDERS: dict[str, Provider] = {}


def provider(*names: str, options: str | None = None) -> Callable[[Factory], Factory]:
    """Register the decorated factory under each of `names`."""

    def register(factory: Factory) -> Factory:
        for name in names:
            register_provider(name, factory, options=options)
        return factory

    return register


def register_provider(name: str, factory: Factory, *, options: str | None = None) -> None:
    """Add (or replace) a provider: `factory(spec)` returns any object implementing
    `agents.protocol.ModelAPI`; `options` names the ModelSpec section it reads, if any."""
    if not name or "/" in name:
        raise ValueError(f"a provider name is a non-empty prefix without '/', got {name!r}")
    PROVIDERS[name] = Provider(factory, options)


@provider("hf", "embedded", options="hf")
def _hf(spec: ModelSpec) -> ModelAPI:
    from agents.backends.hf import load_hf

    return load_hf(spec.name, spec.hf)


@provider("openai", options="openai")
def _openai(spec: ModelSpec) -> ModelAPI:
    from agents.backends.openai_compat import load_openai

    return load_openai(spec.name, spec.openai)


@provider("scripted", options="scripted")
def _scripted(spec: ModelSpec) -> ModelAPI:
    from agents.backends.scripted import ScriptedBackend

    return ScriptedBackend(spec.name, spec.scripted)


@provider("classifier")
def _classifier(spec: ModelSpec) -> ModelAPI:
    from agents.backends.classifier import ClassifierBackend

    return ClassifierBackend(spec.name, spec.name.split("/", 1)[1])


@provider("extractive", options="extractive")
def _extractive(spec: ModelSpec) -> ModelAPI:
    from agents.backends.extractive import ExtractiveBackend

    return ExtractiveBackend(spec.name, spec.extractive)
