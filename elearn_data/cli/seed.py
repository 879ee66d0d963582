"""``elearn seed``: fill every shard with deterministic Faker data (over ``seeding.seed``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from elearn_data.cli.common import (
    console,
    domain_errors,
    err_console,
    print_json,
    print_table,
    refuse_unless_embedded,
)
from elearn_data.config import Settings, load_settings
from elearn_data.extras import need

if TYPE_CHECKING:
    from elearn_data import seeding

_PHASE_UNITS = {
    "prepare": "steps",
    "users": "users",
    "catalog": "courses",
    "enrollments": "enrollments",
    "progress": "enrollments",
    "reviews": "enrollments",
    "assessments": "enrollments",
    "payments": "transactions",
    "indexes": "statements",
    "finish": "steps",
    "content": "documents",
    "commit": "shards",
}


def seed(
    scale: Annotated[
        str, typer.Option(help="small (the reference figures), medium, or large (1M learners).")
    ] = "small",
    seed_value: Annotated[
        int, typer.Option("--seed", help="The same seed gives the same rows, ids included.")
    ] = 0,
    reset: Annotated[
        bool,
        typer.Option(help="Empty the data tables and the content store first."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
    force: Annotated[
        bool, typer.Option(help="Allow --reset on a cluster that is not the embedded one.")
    ] = False,
) -> None:
    """Fill every shard (and the content store) with deterministic, realistic data.

    Every seeded user -- learners and instructors -- logs in with the password
    'elearn-seed-password'. A database that already holds data is refused
    unless --reset is given (which replaces everything, atomically); --reset on
    a cluster that is not the embedded one needs --force too.
    """
    with domain_errors():
        settings = load_settings()
        if reset:
            refuse_unless_embedded(settings, "empty every table (seed --reset)", force=force)
        report = run(settings, scale, seed_value, reset=reset, quiet=as_json)
        if as_json:
            print_json(report.to_dict())
            return
        _print_report(report)


def run(
    settings: Settings, scale: str, seed_value: int, *, reset: bool, quiet: bool = False
) -> seeding.SeedReport:
    """Seed with one progress bar per phase (on stderr); return the report.

    With the in-process content store nothing outlives this command, so no
    content document is written and the lessons say ``pending`` instead of
    pointing at documents that vanish when the process ends.
    """
    need("elearn seed", "faker", "numpy")
    from elearn_data import seeding  # noqa: PLC0415 - the [seed] extra, loaded by this command only

    content_limit = 0 if settings.mongo_uri is None else None
    with Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=quiet,
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def show(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(phase, total=total, unit=_PHASE_UNITS.get(phase, ""))
            bars.update(tasks[phase], completed=done, total=total)

        report = seeding.seed(
            settings, scale, seed_value, reset, progress=show, content_limit=content_limit
        )
    return report


def _print_report(report: seeding.SeedReport) -> None:
    table = Table(title=f"seeded scale {report.scale} (seed {report.seed})")
    shards = sorted(report.counts)
    table.add_column("table")
    for shard in shards:
        table.add_column(shard, justify="right")
    table.add_column("total", justify="right")
    for name, total in sorted(report.table_totals().items()):
        cells = [f"{report.counts[s].get(name, 0):,}" for s in shards]
        table.add_row(name, *cells, f"{total:,}")
    print_table(table)
    timings = ", ".join(f"{phase} {seconds:.1f}s" for phase, seconds in report.phases.items())
    console.print(
        f"{report.rows:,} rows in {report.elapsed_s:.1f} s ({report.rows_per_s:,.0f} rows/s); "
        f"{report.content_documents:,} content and {report.preference_documents:,} preferences "
        f"documents ({report.content_backend})"
    )
    console.print(f"[dim]{timings}[/]")
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"every seeded user's password: [bold]{report.password}[/]")
