"""`Experiment`: the root of every experiment's config (`w2sg train` and `w2sg run`, ladder,
tournament, grid): a name and the folder its runs go under; and `Config`, the base of every w2sg
config: an unknown field is an error, never silently ignored. (`agents.config.Config` is the same
base for agents, graphs and oversight: agents and w2sg never import each other.)

Settings several experiments share but not all (seed, dataset, n_boot, cache_dir, concurrency) stay
declared where they are: a run id hashes the config's fields in declaration order
(w2sg.identity), so moving one up into this root would rename existing run folders. `out_dir` moves
freely: where files live is never in an id.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from w2sg.identity import run_id


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Experiment(Config):
    name: str = Field("experiment", description="the run folder's name starts with this")
    out_dir: Path = Field(Path("runs"), description="run folders are created under here")

    def id_data(self, data: str) -> str:
        """What of the data names the run: its fingerprint (an experiment that reads more, such as
        recorded label columns, adds it here)."""
        return data

    def run_id(self, data: str) -> str:
        """The run folder's name, from this config and the fingerprint of the data it runs on
        (w2sg.identity)."""
        return run_id(self.name, self, self.id_data(data))


def first_error(e: ValueError) -> str:
    """A nested config's first validation error as one line, `field.path: message` (pydantic's
    whole report repeats the inner model's name and input: too much inside an outer error)."""
    errors = getattr(e, "errors", None)
    if not callable(errors) or not errors():
        return str(e)
    err = errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    where = ".".join(str(x) for x in err.get("loc", ()))
    return f"{where}: {msg}" if where else msg
