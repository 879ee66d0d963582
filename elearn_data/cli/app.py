"""The root ``elearn`` command."""

from __future__ import annotations

import logging

import typer

from elearn_data.cli import cluster, health, migrate, ops

app = typer.Typer(
    name="elearn",
    help="elearn_data: region-sharded PostgreSQL with streaming replicas, plus course content.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(cluster.app, name="cluster")
app.add_typer(migrate.app, name="migrate")
app.command()(ops.recover)
app.command()(health.health)
app.command()(health.stats)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO.")) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
def up(
    replicas: int = typer.Option(1, help="Streaming replicas per primary."),
    base_port: int | None = typer.Option(None, help="First port of a new cluster."),
) -> None:
    """Bring the platform up from nothing: the embedded cluster, then its status (idempotent)."""
    cluster.up(replicas=replicas, base_port=base_port, durability=None)


def main() -> None:
    """Entry point of the ``elearn`` console script."""
    app()
