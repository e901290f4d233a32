"""Model strings → backends. Backends are imported lazily so `import agents` stays torch-free.

Register your own provider with `register_provider("myprov", factory)`; the factory takes the
ModelSpec and returns any object that implements `agents.protocol.ModelAPI`.
"""

from __future__ import annotations

from collections.abc import Callable

from agents.config import ModelSpec
from agents.model import Model
from agents.protocol import ModelAPI

Factory = Callable[[ModelSpec], ModelAPI]


def _hf(spec: ModelSpec) -> ModelAPI:
    from agents.backends.hf import load_hf

    return load_hf(spec.name, spec.hf)


def _openai(spec: ModelSpec) -> ModelAPI:
    from agents.backends.openai_compat import load_openai

    return load_openai(spec.name, spec.openai)


def _scripted(spec: ModelSpec) -> ModelAPI:
    from agents.backends.scripted import ScriptedBackend

    return ScriptedBackend(spec.name, spec.scripted)


def _classifier(spec: ModelSpec) -> ModelAPI:
    from agents.backends.classifier import ClassifierBackend

    return ClassifierBackend(spec.name, spec.name.split("/", 1)[1])


def _extractive(spec: ModelSpec) -> ModelAPI:
    from agents.backends.extractive import ExtractiveBackend

    return ExtractiveBackend(spec.name, spec.extractive)


PROVIDER_FACTORIES: dict[str, Factory] = {
    "hf": _hf,
    "embedded": _hf,
    "openai": _openai,
    "scripted": _scripted,
    "classifier": _classifier,
    "extractive": _extractive,
}


def register_provider(prefix: str, factory: Factory) -> None:
    from agents import config

    PROVIDER_FACTORIES[prefix] = factory
    if prefix not in config.PROVIDERS:
        config.PROVIDERS = (*config.PROVIDERS, prefix)


def get_model(spec: ModelSpec | str, **fields: object) -> Model:
    """`get_model("embedded/smollm2")`, `get_model(spec)`, or `get_model("scripted", max_concurrency=4)`."""
    if isinstance(spec, str):
        spec = ModelSpec.model_validate({"name": spec, **fields})
    elif fields:
        spec = spec.model_copy(update=fields)
    return Model(PROVIDER_FACTORIES[spec.provider](spec), spec)


def wrap(api: ModelAPI, **fields: object) -> Model:
    """Wrap a backend object you built yourself (e.g. a ScriptedBackend with a reply function)."""
    return Model(api, ModelSpec.model_validate({"name": api.name, **fields}))
