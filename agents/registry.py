"""Model strings → wrapped backends, through the provider registry (`agents.providers`).

Register your own provider with `register_provider("myprov", factory)`; the factory takes the
ModelSpec and returns any object that implements `agents.protocol.ModelAPI`.
"""

from __future__ import annotations

from agents.config import ModelSpec
from agents.model import Model
from agents.protocol import ModelAPI
from agents.providers import PROVIDERS


def get_model(spec: ModelSpec | str, **fields: object) -> Model:
    """`get_model("embedded/smollm2")`, `get_model(spec)`, or `get_model("scripted", max_concurrency=4)`."""
    if isinstance(spec, str):
        spec = ModelSpec.model_validate({"name": spec, **fields})
    elif fields:
        spec = spec.model_copy(update=fields)
    return Model(PROVIDERS[spec.provider].factory(spec), spec)


def wrap(api: ModelAPI, **fields: object) -> Model:
    """Wrap a backend object you built yourself (e.g. a ScriptedBackend with a reply function)."""
    return Model(api, ModelSpec.model_validate({"name": api.name, **fields}))
