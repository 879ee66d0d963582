"""``elearn health`` and ``elearn stats``: the operator's and the analyst's first look.

Both open the platform read-only (no start-up recovery: a health check never
writes) and print what :func:`elearn_data.health.health_report` and
:meth:`elearn_data.analytics.Analytics.platform_stats` return.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from elearn_data.analytics import Analytics
from elearn_data.cli.common import UP_HINT, console, domain_errors, print_json, print_table
from elearn_data.cli.monitor import show_deep
from elearn_data.config import load_settings
from elearn_data.database import Database
from elearn_data.health import HealthReport, health_report
from elearn_data.monitoring.deep import deep_report


def _open(application: str) -> Database:
    settings = load_settings().model_copy(
        update={"recover_on_connect": False, "outbox_relay": False}
    )
    return Database(settings, application=application)


def health(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    timeout: Annotated[
        float, typer.Option(help="Seconds allowed for each node probe.", min=0.1)
    ] = 3.0,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also sizes, unused and duplicate indexes, bloat, long transactions, slots.",
        ),
    ] = False,
) -> None:
    """Check nodes, replication lag, schema, MongoDB, pools and statistics; exit 1 if unhealthy."""
    with domain_errors():
        with _open("elearn-health") as db:
            report = health_report(db, timeout_s=timeout)
            details = deep_report(db) if deep else None
        if as_json:
            payload = report.to_dict()
            if details is not None:
                payload["deep"] = details.to_dict()
            print_json(payload)
        else:
            show_report(report)
            if details is not None:
                show_deep(details)
        if not report.ok:
            raise typer.Exit(1)


def stats(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print the platform's headline figures, per shard and merged."""
    with domain_errors():
        with _open("elearn-stats") as db:
            frame = Analytics(db).platform_stats()
        records = [
            {str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")
        ]
        if as_json:
            print_json(records)
            return
        # One row per figure, one column per shard: fits 80 columns with any number.
        table = Table(title="platform statistics")
        table.add_column("figure")
        for row in records:
            shard = str(row["shard"])
            table.add_column(f"[bold]{shard}[/]" if shard == "all" else shard, justify="right")
        for figure in [str(c) for c in frame.columns if c != "shard"]:
            table.add_row(figure, *(_cell(row[figure]) for row in records))
        print_table(table)


# ------------------------------------------------------------------ rendering


def show_patroni(views: tuple[dict[str, Any], ...]) -> None:
    """Print Patroni's view of each HA shard: one row per member."""
    table = Table(title="Patroni (HA shards)")
    for column in ("shard", "member", "role", "state", "address", "timeline", "lag bytes"):
        table.add_column(column)
    for view in views:
        if view.get("error"):
            table.add_row(view["shard"], "-", "-", f"[red]{view['error']}[/]", "", "", "")
            continue
        for m in view.get("members", []):
            role = m["role"]
            table.add_row(
                view["shard"],
                m["name"],
                f"[bold]{role}[/]" if m["role"] == "leader" else role,
                m["state"],
                f"{m['host']}:{m['port']}",
                _cell(m.get("timeline")),
                _cell(m.get("lag")),
            )
    console.print(table)


def show_report(report: HealthReport) -> None:
    """Print the health report as tables (nodes, schema, mongo, pools, stats)."""
    nodes = Table(title="nodes")
    # A node's error is listed with the problems below the tables.
    for column in ("shard", "role", "server", "up", "standby", "lag B", "lag s", "revision"):
        nodes.add_column(column)
    for n in report.nodes:
        nodes.add_row(
            n.shard,
            n.role if n.in_service else f"{n.role} [red](out of service)[/]",
            (n.server or n.address).replace(",", ", "),
            "[green]yes[/]" if n.reachable else "[red]DOWN[/]",
            _cell(n.in_recovery),
            _cell(n.replay_lag_bytes),
            "-" if n.replay_lag_seconds is None else f"{n.replay_lag_seconds:.1f}",
            _cell(n.schema_revision),
        )
    print_table(nodes)
    if report.patroni:
        show_patroni(report.patroni)

    schema = Table(title="schema")
    for column in ("shard", "revision", "head", "state"):
        schema.add_column(column)
    for s in report.schema:
        colour = "green" if s.state == "ok" else "red"
        state = f"[{colour}]{s.state}[/]" + (f" ({s.error})" if s.error else "")
        schema.add_row(s.shard, _cell(s.revision), s.head, state)
    print_table(schema)

    mongo = Table(title="content store")
    for column in ("backend", "address", "database", "reachable", "documents", "error"):
        mongo.add_column(column)
    m = report.mongo
    documents = sum((m.get("collections") or {}).values())
    mongo.add_row(
        _cell(m.get("backend")),
        _cell(m.get("address") or "in process"),
        _cell(m.get("database")),
        "[green]yes[/]" if m.get("reachable") else "[red]no[/]",
        str(documents),
        _cell(m.get("error") or ""),
    )
    print_table(mongo)

    pools = Table(title="connection pools")
    for column in ("shard", "role", "pool", "address", "size", "out", "overflow", "in"):
        pools.add_column(column)
    for p in report.pools:
        pools.add_row(
            _cell(p["shard"]),
            _cell(p["role"]),
            _cell(p["pool"]),
            _cell(p["address"]).replace(",", ", "),
            *(_cell(p[k]) for k in ("size", "checked_out", "overflow", "checked_in")),
        )
    print_table(pools)

    if report.stats is None:
        console.print(f"[red]statistics unavailable:[/] {report.stats_error}")
    else:
        figures = Table(title="platform statistics (all shards)")
        figures.add_column("figure")
        figures.add_column("value", justify="right")
        for key, value in report.stats.items():
            figures.add_row(key, _cell(value))
        print_table(figures)

    if report.ok:
        console.print(f"[bold green]healthy[/] (checked in {report.elapsed_s:.2f} s)")
    else:
        console.print("[bold red]UNHEALTHY[/]")
        for problem in report.problems:
            console.print(f"  [red]•[/] {escape(problem)}")
        if any(not n.reachable for n in report.nodes):
            console.print(f"[dim]hint:[/] {UP_HINT}", soft_wrap=True)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
