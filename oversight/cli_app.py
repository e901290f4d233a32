"""What every `w2sg` subcommand shares: the app, consoles, and one way to fail."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    help="Weak-to-strong oversight simulator.", no_args_is_help=True, pretty_exceptions_enable=False
)
console = Console()
err_console = Console(stderr=True)


def fail(e: Exception) -> typer.Exit:
    """Print `error: ...` (the message names the file, field or row) and exit with status 2."""
    err_console.print(f"[red]error:[/red] {e}", markup=True, highlight=False)
    return typer.Exit(2)
