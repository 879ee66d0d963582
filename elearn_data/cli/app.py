"""The root ``elearn`` command."""

from __future__ import annotations

import logging
import os
import sys

import typer

from elearn_data import migrations
from elearn_data.cli import (
    backup,
    bench,
    cluster,
    health,
    migrate,
    monitor,
    ops,
    seed,
    serve,
    users,
)
from elearn_data.cli import migrate as migrate_cli
from elearn_data.cli import sql as sql_cli
from elearn_data.cli.common import (
    console,
    domain_errors,
    err_console,
    one_line_text,
    print_error,
)
from elearn_data.config import load_settings
from elearn_data.errors import InvalidState
from elearn_data.extras import need

app = typer.Typer(
    name="elearn",
    help="elearn_data: region-sharded PostgreSQL with streaming replicas, plus course content.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(cluster.app, name="cluster")
app.add_typer(migrate.app, name="migrate")
app.add_typer(users.app, name="users")
app.add_typer(backup.app, name="backup")
app.command()(ops.recover)
app.command()(health.health)
app.command()(health.stats)
app.command()(seed.seed)
app.command()(bench.bench)
app.command()(sql_cli.sql)
app.command()(serve.serve)
app.command()(monitor.top)
app.command()(monitor.metrics)


class _OneLineFormatter(logging.Formatter):
    """Log records as one line each: no driver tracebacks or SQLAlchemy links in the CLI."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return one_line_text(super().format(record))
        finally:
            record.exc_info, record.exc_text = saved


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO.")) -> None:
    handler = logging.StreamHandler()
    fmt = "%(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt) if verbose else _OneLineFormatter(fmt))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    if not verbose:
        # Routing notices (a replica skipped, a read moved to the primary) are for
        # --verbose: the command's own error or report already says what is down.
        logging.getLogger("elearn_data.sharding").setLevel(logging.ERROR)


@app.command()
def up(
    replicas: int = typer.Option(1, help="Streaming replicas per primary."),
    base_port: int | None = typer.Option(
        None, help="First port of a new cluster (default: the first free range below 32768)."
    ),
    ha: bool = typer.Option(False, "--ha", help="Run the shards under Patroni (failover)."),
) -> None:
    """Bring the platform up from nothing: cluster, migrations, sample data, health report.

    Idempotent: a second run starts what is stopped, migrates what is behind,
    keeps the existing data, and reports.
    """
    with domain_errors():  # before the cluster is built: sample data needs the [seed] extra
        need("elearn up", "faker", "numpy", extra="all")
    cluster.up(replicas=replicas, base_port=base_port, durability=None, ha=ha)
    with domain_errors():
        settings = load_settings()
        migrations.upgrade(settings)
        migrate_cli.show(migrations.status(settings))
        try:
            report = seed.run(settings, "small", 0, reset=False)
        except InvalidState as exc:
            console.print(f"[dim]sample data: kept the existing data ({exc})[/]")
        else:
            console.print(
                f"sample data: {report.rows:,} rows (scale small); every seeded user's "
                f"password is [bold]{report.password}[/]"
            )
            for note in report.notes:
                console.print(f"[yellow]note:[/] {note}")
    health.health(as_json=False, timeout=3.0)


def main() -> None:
    """Entry point of the ``elearn`` console script.

    An error no command expected is printed as one line (``--verbose`` or
    ``ELEARN_DEBUG=1`` shows the traceback) and exits with code 1.
    """
    try:
        app()
    except Exception as exc:
        if os.environ.get("ELEARN_DEBUG") or {"-v", "--verbose"} & set(sys.argv[1:]):
            raise
        print_error(exc)
        err_console.print("[dim](run with --verbose for the traceback)[/]")
        sys.exit(1)
