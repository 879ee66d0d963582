"""``elearn migrate``: upgrade every shard, or report each shard's revision."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from elearn_data import migrations
from elearn_data.cli.common import domain_errors, print_json, print_table, progress_printer
from elearn_data.config import load_settings

app = typer.Typer(help="Schema migrations on every shard primary.", invoke_without_command=True)


@app.callback()
def migrate(
    ctx: typer.Context,
    shard: Annotated[str | None, typer.Option(help="Only this shard.")] = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Upgrade every shard primary (or one) to the target revision."""
    if ctx.invoked_subcommand is not None:
        return
    with domain_errors():
        settings = load_settings()
        emit = progress_printer()
        migrations.upgrade(
            settings, revision, shard=shard, progress=lambda s: emit(f"shard {s}: at {revision}")
        )
        show(migrations.status(settings))


def show(revisions: list[migrations.ShardRevision]) -> None:
    """Print the per-shard revision table."""
    table = Table(title="schema revisions")
    for column in ("shard", "revision", "head", "state"):
        table.add_column(column)
    colours = {"ok": "green", "behind": "yellow", "ahead": "red", "unreachable": "red"}
    for r in revisions:
        state = f"[{colours[r.state]}]{r.state}[/]" + (f" ({r.error})" if r.error else "")
        table.add_row(r.shard, r.current or "-", r.head, state)
    print_table(table)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show each shard's revision; exit 1 when any shard drifts from the head."""
    with domain_errors():
        revisions = migrations.status(load_settings())
        if as_json:
            print_json([r.to_dict() for r in revisions])
        else:
            show(revisions)
        if migrations.drift(revisions):
            raise typer.Exit(1)
