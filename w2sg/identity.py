"""Run ids: the one versioned identity of a run folder (label hashes, `LabelConfig.config_hash`,
follow the same rules for a graph's labels).

VERSION 1, every id so far: `<name>-<sha256 of the config's JSON dump, less what changes no
result, + "|data:" + the data's fingerprint>[:10]`. What changes no result is declared, once, on
the config class it belongs to, and read here for every section at any depth:
- `ID_EXCLUDE` (class variable): fields left out always, in pydantic's nested `exclude` form
  (how fast a run goes, where files live, how models are called, a later stage with its own folder);
- `ID_NEUTRAL` (class variable): fields left out at one value, the value that reproduces the runs
  made before the field existed (`seeds: None`, `sizes.dev: None`, `precision: auto`, ...), so
  adding a field never renames an existing folder; away from that value it is in the id;
- always: the folders in `WHERE` and `dataset.path` (the data's content is in its fingerprint).
Two v1 rules live in serializers, since they apply to every dump of their class (grid cell ids,
label hashes): a dataset's unset `split` and a debate's unset `debaters` are left out. A new
rule goes in a class's ID_NEUTRAL / ID_EXCLUDE, never as a special case here; an incompatible
change of these rules is VERSION 2, and must still compute version 1 ids for folders of VERSION 1.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel

VERSION = 1
#: Where files live changes no result: the data's content is in the fingerprint instead.
WHERE = frozenset({"out_dir", "cache_dir", "data_dir"})

Exclude = dict[Any, Any]  # pydantic's nested exclude: field (key, index) → True or a nested Exclude


def run_id(name: str, cfg: BaseModel, data: str, exclude: frozenset[str] | Exclude = frozenset()) -> str:
    """`<name>-<hash>` of `cfg` less what its sections declare changes no result (`left_out`), the
    folders in WHERE and `dataset.path`, and the fingerprint of the data it ran on (`data`).
    `exclude`: more fields to leave out (pydantic's nested form too: {"sizes": {"dev"}})."""
    drop: Exclude = dict.fromkeys(WHERE, True)
    if isinstance(getattr(cfg, "dataset", None), BaseModel):
        drop["dataset"] = {"path": True}  # where the dataset's files are; their content is in `data`
    drop = merge(drop, left_out(cfg))
    drop = merge(drop, exclude if isinstance(exclude, dict) else dict.fromkeys(exclude, True))
    blob = cfg.model_dump_json(exclude=drop) + "|data:" + data
    return f"{name}-{digest(blob, 10)}"


def digest(blob: str, n: int) -> str:
    """The first `n` hex digits of the blob's sha256: every id and hash of the project."""
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


def left_out(value: Any) -> Exclude:
    """What `value` (a config, or a dict / list of them) leaves out of its identity: each model's
    `ID_EXCLUDE`, and its `ID_NEUTRAL` fields at their neutral value, at any depth."""
    if isinstance(value, BaseModel):
        out: Exclude = {}
        neutral = getattr(type(value), "ID_NEUTRAL", {})
        for name in type(value).model_fields:
            field = getattr(value, name)
            if name in neutral and field == neutral[name]:
                out[name] = True
            elif sub := left_out(field):
                out[name] = sub
        return merge(out, getattr(type(value), "ID_EXCLUDE", {}))
    if isinstance(value, dict):
        return {k: sub for k, v in value.items() if (sub := left_out(v))}
    if isinstance(value, list | tuple):
        return {i: sub for i, v in enumerate(value) if (sub := left_out(v))}
    return {}


def merge(a: Exclude, b: Any) -> Exclude:
    """Two nested excludes as one (True, leaving a field out whole, wins; a set is its fields)."""
    out = dict(a)
    for k, v in _as_dict(b).items():
        if out.get(k) is True or v is True:
            out[k] = True
        elif k in out:
            out[k] = merge(_as_dict(out[k]), v)
        else:
            out[k] = v
    return out


def _as_dict(x: Any) -> Exclude:
    return dict.fromkeys(x, True) if isinstance(x, set | frozenset) else dict(x)
