"""The registry of protocol kinds: `kind:` → its `GraphSpec`. A new kind is a module with its spec
class and one line here; `AnyGraph` is what configs declare (`graph:` of a labelling run, each
entry of a run's `protocols:`), discriminated on `kind`."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag

from graphs.debate import DebateConfig
from graphs.interaction import InteractionConfig
from graphs.spec import GraphSpec

KINDS: dict[str, type[GraphSpec]] = {
    "debate": DebateConfig,  # two-sided debate, consultancy, blind judge, N-agent debate
    "interaction": InteractionConfig,  # a strong assistant informs a weak (model, simulated, human) overseer
}


def _kind(value: Any) -> str | None:
    return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)


# Built from KINDS, so registering a kind is the one line above.
AnyGraph = Annotated[
    Union[tuple(Annotated[cls, Tag(kind)] for kind, cls in KINDS.items())],  # type: ignore[valid-type]  # noqa: UP007
    Discriminator(
        _kind,
        custom_error_type="graph_kind",
        custom_error_message=f"a graph needs `kind:`, one of {', '.join(KINDS)}",
    ),
]
