"""The `health` and `stats` commands mounted on a Typer app of their own (as app.py mounts them)."""

from __future__ import annotations

import typer

from elearn_data.cli import health as health_cli


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command(name="health")(health_cli.health)
    app.command(name="stats")(health_cli.stats)
    return app
