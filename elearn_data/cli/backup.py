"""``elearn backup ...``: pgBackRest backups and cross-shard restore points."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from elearn_data.cli.common import console, domain_errors, print_json, progress_printer
from elearn_data.cluster.backup import BackupInfo, Backups
from elearn_data.cluster.local import LocalCluster
from elearn_data.config import elearn_home
from elearn_data.errors import InvalidInput

app = typer.Typer(help="Back up the embedded cluster and restore it to one point across shards.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _backups(repo: Path | None = None) -> Backups:
    return Backups(LocalCluster(elearn_home()), repo=repo)


def _table(backups: list[BackupInfo]) -> Table:
    table = Table(title="backups")
    for column in ("shard", "label", "kind", "stopped at (UTC)", "size", "in repository"):
        table.add_column(column)
    for b in backups:
        table.add_row(
            b.shard,
            b.label,
            b.kind,
            b.stopped_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{b.size_bytes / 2**20:,.1f} MiB",
            f"{b.repo_bytes / 2**20:,.1f} MiB",
        )
    return table


@app.command()
def init(
    repo: Annotated[
        Path | None, typer.Option(help="Repository folder (default ELEARN_HOME/backup/repo).")
    ] = None,
) -> None:
    """Create the repository, one stanza per shard, and turn on WAL archiving (restarts nodes)."""
    with domain_errors():
        backups = _backups(repo)
        backups.init(progress=progress_printer())
        console.print(f"backups ready: repository {backups.repo}")


def _take(kind: str, as_json: bool) -> None:
    with domain_errors():
        started = time.monotonic()
        taken = _backups().backup(kind, progress=progress_printer())  # type: ignore[arg-type]
        if as_json:
            print_json([b.to_dict() for b in taken])
        else:
            console.print(_table(taken))
            console.print(f"{kind} backup of every shard in {time.monotonic() - started:.1f} s")


@app.command()
def full(as_json: JsonFlag = False) -> None:
    """Take a full base backup of every shard."""
    _take("full", as_json)


@app.command()
def incr(as_json: JsonFlag = False) -> None:
    """Take an incremental backup of every shard (changes since the last backup)."""
    _take("incr", as_json)


@app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """List the base backups and the restore points."""
    with domain_errors():
        backups = _backups()
        found = backups.list()
        points = sorted(backups.restore_points().values(), key=lambda p: p.created_at)
        if as_json:
            print_json(
                {
                    "backups": [b.to_dict() for b in found],
                    "restore_points": [p.to_dict() for p in points],
                }
            )
            return
        console.print(_table(found))
        table = Table(title="restore points")
        for column in (
            "name",
            "created at (UTC)",
            "decisions paused",
            *backups.cluster.state().shards,
        ):
            table.add_column(column)
        for p in points:
            table.add_row(
                p.name,
                p.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                f"{p.pause_s * 1000:.1f} ms",
                *p.lsns.values(),
            )
        console.print(table)


@app.command("restore-point")
def restore_point(
    name: Annotated[str, typer.Argument(help="Name of the point (letters, digits, _ . -).")],
    as_json: JsonFlag = False,
) -> None:
    """Create a restore point on every shard at one cut of the two-phase decisions."""
    with domain_errors():
        point = _backups().restore_point(name)
        if as_json:
            print_json(point.to_dict())
        else:
            console.print(
                f"restore point {point.name!r} on every shard; two-phase decisions paused "
                f"{point.pause_s * 1000:.1f} ms"
            )


@app.command()
def restore(
    into: Annotated[Path, typer.Option("--into", help="Empty folder for the new cluster.")],
    to: Annotated[str | None, typer.Option("--to", help="A restore point's name.")] = None,
    at: Annotated[
        str | None, typer.Option("--time", help="A moment, ISO 8601 with offset.")
    ] = None,
    replicas: Annotated[int, typer.Option(help="Replicas per restored primary.")] = 1,
    as_json: JsonFlag = False,
) -> None:
    """Build a new embedded cluster from the backups, every shard at the same point.

    Exit code 1 when a cross-shard invariant does not hold after the restore.
    """
    with domain_errors():
        moment: datetime | None = None
        if at is not None:
            try:
                moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
            except ValueError as exc:
                raise InvalidInput(f"not an ISO 8601 time: {at!r}") from exc
        report = _backups().restore(
            into, point=to, time_target=moment, replicas=replicas, progress=progress_printer()
        )
        if as_json:
            print_json(report.to_dict())
        else:
            console.print(
                f"restored to {report.target} under {report.home} in {report.seconds:.1f} s; "
                f"in-doubt transactions: {report.committed} committed, "
                f"{report.rolled_back} rolled back"
            )
            for violation in report.violations:
                console.print(f"[red]invariant violated:[/] {violation}")
            console.print(f"use it with ELEARN_HOME={report.home}")
        if not report.ok:
            raise typer.Exit(1)
