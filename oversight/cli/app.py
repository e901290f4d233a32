"""What every `w2sg` subcommand shares: the app and its root options, consoles, one way to fail, one
way to load a config."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import typer.core
from pydantic import BaseModel, Field
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from typer.exceptions import TyperException

from agents import ModelError, load_config
from agents.names import check_config_models
from w2sg import progress

if TYPE_CHECKING:
    from w2sg.tracking import TrackingConfig

#: What a bad input raises anywhere under a command: a config (`ConfigError`, pydantic's
#: `ValidationError`), data (`w2sg.data.DataError`) or `--set` problem (all `ValueError`s), a model
#: that cannot be loaded or called, a missing or unwritable file, a failed run. The CLI's one
#: boundary (`Boundary`) prints each as `error: <message>` and exits with status 2.
USER_ERRORS: tuple[type[Exception], ...] = (ModelError, ValueError, OSError, RuntimeError, KeyError)
#: Subclasses of those that mean a bug in this code, not a bad input: they keep their traceback.
BUGS: tuple[type[Exception], ...] = (NotImplementedError, RecursionError)


class Boundary(typer.core.TyperGroup):
    """The root group: every command (and sub-typer) runs inside its `invoke`, so one place turns
    a user error into one `error: ...` and exit 2, whether run as `w2sg` or through
    `CliRunner().invoke(app, ...)`. With the root `--debug` the error keeps its traceback.
    Typer's own exits, aborts and usage errors, KeyboardInterrupt and anything else pass through."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except USER_ERRORS as e:
            if isinstance(e, BUGS) or ctx.params.get("debug"):
                raise
            raise fail(e) from None

    def list_commands(self, ctx: typer.Context) -> list[str]:
        """Commands in `PANELS` order (`w2sg --help` groups them by `rich_help_panel=`), each panel
        in registration order."""
        names = super().list_commands(ctx)
        rank = {panel: i for i, panel in enumerate(PANELS)}
        return sorted(names, key=lambda n: rank.get(getattr(self.commands[n], "rich_help_panel", None), 99))


#: The areas `w2sg --help` groups the commands in, in this order; each command names its
#: `rich_help_panel=`.
PANELS = ("Experiments", "Oversight graphs", "Labelling", "Models")

app = typer.Typer(
    cls=Boundary,
    help="Weak-to-strong oversight simulator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at INFO")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of an error")] = False,
) -> None:
    # --debug is read by `Boundary.invoke` from the root context's params.
    if not verbose:  # our own status lines show progress; transformers' bars would interleave
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # e.g. each new judge head's load report
    _setup_logging(verbose)
    for noisy in ("httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _setup_logging(verbose: bool) -> None:
    """On a terminal: rich log lines (INFO with -v), progress shown by the commands' own status
    lines and bars. Otherwise (a log file, nohup, CI): one plain line per log record, and the
    progress lines of `w2sg.progress` at INFO even without -v. `W2SG_PROGRESS=lines` forces the
    progress lines on a terminal too, `W2SG_PROGRESS=off` silences them."""
    tty = sys.stderr.isatty() if hasattr(sys.stderr, "isatty") else False
    handler: logging.Handler
    if tty:
        handler = RichHandler(console=err_console, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:  # RichHandler would wrap a record over several lines at the console's width
        handler = progress.StderrHandler("%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    mode = os.environ.get("W2SG_PROGRESS", "").strip().lower()
    progress.reset()
    if mode == "off":
        progress.log.setLevel(logging.WARNING)
    elif mode == "lines" or not tty:
        progress.lines_to_stderr()


C = TypeVar("C", bound=BaseModel)


def fail(e: Exception) -> typer.Exit:
    """Print `error: ...` (the message names the file, field or row) and return the exit with
    status 2 to raise. The message is printed as is (no markup, no wrapping); a `KeyError`'s
    without the quotes `str()` adds."""
    message = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str) else e
    # Our own errors name the file, field or row; anything else may be a bug: say what it was.
    ours = isinstance(e, ValueError | ModelError | OSError)  # config, data, model, file problems
    hint = "" if ours else f" ({type(e).__name__}; `w2sg --debug ...` shows the traceback)"
    err_console.print(f"[red]error:[/red] {escape(str(message))}{hint}", highlight=False, soft_wrap=True)
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

# `--track tensorboard|wandb` on every command that trains or labels: `--set tracking...` in one
# word (w2sg.tracking).
TRACK_SETS = {"tensorboard": "tracking.tensorboard=true", "wandb": "tracking.wandb={mode: offline}"}
TrackOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--track",
        help="training curves of every model (labelling: progress and label quality): tensorboard "
        "(event files in the run folder) or wandb (an offline run there; `wandb sync` uploads it); "
        "repeatable. Same as --set tracking...",
    ),
]


def with_tracking(overrides: Sequence[str] | None, track: Sequence[str] | None) -> list[str]:
    """`--set` overrides plus those of `--track` (unknown names fail here, naming the choices)."""
    unknown = [t for t in track or () if t not in TRACK_SETS]
    if unknown:
        raise ValueError(f"--track {unknown[0]}: choose from {', '.join(TRACK_SETS)}")
    return [*(overrides or []), *(TRACK_SETS[t] for t in track or ())]


def tracking_of(track: Sequence[str] | None) -> TrackingConfig:
    """`--track` of a command with no training config (`w2sg judge train`): the same settings."""
    from agents.config import apply_overrides
    from w2sg.tracking import TrackingConfig

    class Holder(BaseModel):
        tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    return apply_overrides(Holder(), with_tracking(None, track), "--track").tracking


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
    cfg = load_config(config, cls, overrides=overrides or ())
    if check:
        check_models(cfg, config, ignore=ignore)
    return cfg


def check_models(cfg: BaseModel, config: Path, *, ignore: Collection[str] = ()) -> None:
    """`load`'s model check on its own, for a command that changes the config first (an override)."""
    check_config_models(cfg, config, ignore=ignore)


def main() -> None:
    app()
