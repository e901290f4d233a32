"""What every `w2sg` subcommand shares: the app and its root options, consoles, one way to fail, one
way to load a config."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.logging import RichHandler

from agents import ConfigError, load_config
from oversight.paths import check_config_models

app = typer.Typer(
    help="Weak-to-strong oversight simulator.", no_args_is_help=True, pretty_exceptions_enable=False
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at INFO")] = False) -> None:
    if not verbose:  # our own status lines show progress; transformers' bars would interleave
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # e.g. each new judge head's load report
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
    )
    for noisy in ("httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


C = TypeVar("C", bound=BaseModel)


def fail(e: Exception) -> typer.Exit:
    """Print `error: ...` (the message names the file, field or row) and exit with status 2."""
    err_console.print(f"[red]error:[/red] {e}", markup=True, highlight=False)
    return typer.Exit(2)


# `--set key.path=value` on every command that takes a config (applied by `load`).
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="override a config field, key.path=value, repeatable; the value is YAML (300, 1e-3, "
        "a flow list of losses); validated like the file, paths relative to the working directory",
    ),
]


def load(
    config: Path,
    cls: type[C],
    *,
    check: bool = True,
    ignore: Collection[str] = (),
    overrides: Sequence[str] | None = None,
) -> C:
    """Read CONFIG into `cls`, apply `--set` overrides, and (unless `check=False`) resolve every
    model name and path in it, so a typo fails here, naming the file and field, before any
    compute is spent. `ignore`: dotted fields the command does not use (e.g. `judge` for `w2sg
    judge train`)."""
    try:
        cfg = load_config(config, cls, overrides=overrides or ())
    except ConfigError as e:
        raise fail(e) from None
    if check:
        check_models(cfg, config, ignore=ignore)
    return cfg


def check_models(cfg: BaseModel, config: Path, *, ignore: Collection[str] = ()) -> None:
    """`load`'s model check on its own, for a command that changes the config first (an override)."""
    try:
        check_config_models(cfg, config, ignore=ignore)
    except ConfigError as e:
        raise fail(e) from None


def main() -> None:
    app()
