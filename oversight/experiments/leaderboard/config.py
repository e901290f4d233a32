"""`LeaderboardConfig`: a `w2sg train` base, the datasets, seeds and methods it runs; `cells()`
expands them into one `W2SGConfig` per (dataset, seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from agents.config import Config, apply_overrides, load_config
from w2sg.datasets import DatasetSpec
from w2sg.experiment import W2SGConfig
from w2sg.identity import digest
from w2sg.methods import METHODS, VANILLA, MethodSpec, Vanilla, build_method


def _base_kind(value: Any) -> str:
    return "inline" if isinstance(value, dict | W2SGConfig) else "path"


# A path or an inline config, told apart before validating, so an error names the inline
# config's field (`base.sizes`) rather than both members of a union.
Base = Annotated[
    Annotated[Path, Tag("path")] | Annotated[W2SGConfig, Tag("inline")], Discriminator(_base_kind)
]


def shipped_methods() -> list[Any]:
    """Every method registered by `w2sg.methods` at its default settings, vanilla first."""
    return [Vanilla(), *(build_method(k) for k in METHODS if k != VANILLA)]


def dataset_label(spec: DatasetSpec) -> str:
    """A dataset's name in tables: its registry name, else its file's or hub id's name."""
    if spec.path is not None:
        return spec.path.stem
    return spec.hub.rsplit("/", 1)[-1] if spec.hub else spec.name or "dataset"


class Cell(BaseModel):
    """One cell: a dataset and a seed, the `w2sg train` config it runs, and its id (a hash of it)."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    seed: int
    config: W2SGConfig
    id: str

    @property
    def axes(self) -> dict[str, str]:
        return {"dataset": self.dataset, "seed": str(self.seed)}


class LeaderboardConfig(Config):
    name: str = "leaderboard"
    out_dir: Path = Field(Path("runs"), description="the leaderboard's folder is <out_dir>/<name>/")
    base: Base = Field(description="the `w2sg train` config every cell runs: a path to its YAML, or inline")
    base_set: list[str] = Field(
        default_factory=list,
        description="`--set` overrides of the base, key.path=value (e.g. sizes.strong=50), applied to "
        "a base given by path too",
    )
    datasets: list[DatasetSpec] | None = Field(
        None,
        description="axis: registry names or dataset specs (docs/datasets.md); None: the base's dataset",
    )
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1, description="axis: seeds")
    methods: list[MethodSpec] = Field(
        default_factory=shipped_methods,
        min_length=1,
        description="the methods every cell trains students of (w2sg.methods); vanilla is added "
        "first when missing, since every method is compared with it. Default: every shipped "
        "method at its default settings",
    )

    @field_validator("datasets", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        """A registry name alone stands for `{name: <name>}`."""
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("methods")
    @classmethod
    def _with_vanilla(cls, methods: list[Any]) -> list[Any]:
        return methods if any(m.label == VANILLA for m in methods) else [Vanilla(), *methods]

    @model_validator(mode="after")
    def _check(self) -> LeaderboardConfig:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds has duplicates: {self.seeds}")
        labels = [dataset_label(d) for d in self.datasets or []]
        if len(set(labels)) != len(labels):
            raise ValueError(f"datasets: two have the same name in the tables: {labels}")
        if isinstance(self.base, W2SGConfig):
            self.cells()  # an inline base is checked here; one by path when it is read
        return self

    @property
    def board_dir(self) -> Path:
        return self.out_dir / self.name

    @property
    def runs_dir(self) -> Path:
        """Where every cell's `w2sg train` run folder goes (as `out_dir` of `w2sg train`)."""
        return self.board_dir / "runs"

    def base_config(self) -> W2SGConfig:
        """The base with `base_set` applied (read from its file when given by path)."""
        if isinstance(self.base, Path):
            return load_config(self.base, W2SGConfig, overrides=self.base_set)
        return apply_overrides(self.base, self.base_set, "base_set") if self.base_set else self.base

    def cells(self) -> list[Cell]:
        """Every cell in a fixed order (datasets, then seeds): the base with that dataset, seed and
        the methods, its runs under `runs_dir`, validated."""
        base = self.base_config()
        out = []
        for spec in self.datasets or [base.dataset]:
            for seed in self.seeds:
                data = {
                    **base.model_dump(exclude_unset=True),
                    "dataset": spec,
                    "seed": seed,
                    "seeds": None,
                    "methods": self.methods,
                    "out_dir": self.runs_dir,
                }
                cfg = W2SGConfig.model_validate(data)
                # Where runs and features go changes no result: not in the cell's id.
                blob = cfg.model_dump_json(exclude={"out_dir", "cache_dir"})
                out.append(Cell(dataset=dataset_label(spec), seed=seed, config=cfg, id=digest(blob, 12)))
        return out
