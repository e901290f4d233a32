"""The one provider registry: a model string's prefix (`hf/...`, `openai/...`) → how to build its
backend and which `ModelSpec` options section it takes. Config validation, `get_model` and the
config checks all read this table; a new provider is one `register_provider` call (a factory, or
the "module:function" of one), as inspect_ai's `@modelapi` does.

Backends are named by import path and imported on first use, so importing this module (and
`agents`) stays torch-free and no module here imports a backend.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# ModelSpec → an object implementing agents.protocol.ModelAPI (typed loosely: agents.config
# imports this module, so this one imports nothing of the package)
Factory = Callable[[Any], Any]


@dataclass(frozen=True)
class Provider:
    build: Factory | str  # a factory, or "module:function" imported on first use (no torch before)
    options: str | None = None  # the ModelSpec field holding its options (None: it takes none)

    @property
    def factory(self) -> Factory:
        if not isinstance(self.build, str):
            return self.build
        module, _, name = self.build.partition(":")
        return getattr(importlib.import_module(module), name)


PROVIDERS: dict[str, Provider] = {}


def register_provider(name: str, factory: Factory | str, *, options: str | None = None) -> None:
    """Add (or replace) a provider: `factory(spec)` (or "module:function", imported when first
    used) returns any object implementing `agents.protocol.ModelAPI`; `options` names the ModelSpec
    section it reads, if any."""
    if not name or "/" in name:
        raise ValueError(f"a provider name is a non-empty prefix without '/', got {name!r}")
    PROVIDERS[name] = Provider(factory, options)


# Built in: each backend module's `from_spec`, imported on first use.
for _name, _module, _options in (
    ("hf", "agents.backends.hf", "hf"),
    ("embedded", "agents.backends.hf", "hf"),
    ("openai", "agents.backends.openai_compat", "openai"),
    ("scripted", "agents.backends.scripted", "scripted"),
    ("classifier", "agents.backends.classifier", None),
    ("extractive", "agents.backends.extractive", "extractive"),
):
    register_provider(_name, f"{_module}:from_spec", options=_options)
