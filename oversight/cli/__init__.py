"""`w2sg`: one CLI whose subcommands map to config files, one module per area.

Importing a command module registers its commands on `app`; `main` is the console script.
"""

from oversight.cli import (  # noqa: F401  (they register their commands)
    debaters,
    graphs,
    grid,
    label,
    ladder,
    leaderboard,
    models,
    run,
    tournament,
    train,
)
from oversight.cli.app import app, main

__all__ = ["app", "main"]
