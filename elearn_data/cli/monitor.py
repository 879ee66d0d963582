"""``elearn top``, ``elearn metrics`` and the deep part of ``elearn health --deep``."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from elearn_data.cli.common import console, domain_errors, err_console, print_json
from elearn_data.config import load_settings
from elearn_data.database import Database
from elearn_data.monitoring.deep import DeepReport
from elearn_data.monitoring.statements import StatementStats
from elearn_data.monitoring.statements import top as top_statements


def _open(application: str) -> Database:
    settings = load_settings().model_copy(
        update={"recover_on_connect": False, "recover_interval_s": 0, "outbox_relay": False}
    )
    return Database(settings, application=application)


def _statements(title: str, rows: list[StatementStats]) -> Table:
    table = Table(title=title)
    for column, justify in (
        ("shard", "left"),
        ("calls", "right"),
        ("mean ms", "right"),
        ("total ms", "right"),
        ("rows", "right"),
        ("statement", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for s in rows:
        table.add_row(
            s.shard,
            f"{s.calls:,}",
            f"{s.mean_ms:.2f}",
            f"{s.total_ms:,.0f}",
            f"{s.rows:,}",
            " ".join(s.query.split())[:160],
        )
    return table


def top(
    shard: Annotated[str | None, typer.Option(help="One shard (default: every shard).")] = None,
    limit: Annotated[int, typer.Option(help="Statements per list.", min=1)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the slowest and the most frequent statements per shard, and merged."""
    with domain_errors():
        with _open("elearn-top") as db:
            report = top_statements(db, shard=shard, limit=limit)
        if as_json:
            print_json(report.to_dict())
            return
        console.print(_statements("slowest statements (mean time)", report.slowest))
        console.print(_statements("most frequent statements", report.most_frequent))
        for label in report.unreachable:
            err_console.print(f"[yellow]not read:[/] {label}")


def metrics(
    serve: Annotated[
        int | None, typer.Option(help="Serve /metrics on 127.0.0.1:PORT until interrupted.")
    ] = None,
) -> None:
    """Print the Prometheus metrics once, or serve them on 127.0.0.1."""
    with domain_errors(), _open("elearn-metrics") as db:
        if serve is None:
            console.out(db.metrics(), end="", highlight=False)
            return
        server, _thread = db.metrics_registry.serve(serve)
        err_console.print(f"serving metrics on http://127.0.0.1:{serve}/metrics (Ctrl-C ends)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def show_deep(report: DeepReport) -> None:
    """Print the deep health report, one block per shard."""
    for shard in report.shards:
        tables = Table(title=f"{shard.shard}: tables")
        for column in ("table", "data", "indexes", "live rows", "dead rows", "bloat"):
            tables.add_column(column, justify="left" if column == "table" else "right")
        for t in sorted(shard.tables, key=lambda t: -(t.table_bytes + t.index_bytes)):
            tables.add_row(
                t.table,
                _mib(t.table_bytes),
                _mib(t.index_bytes),
                f"{t.live_rows:,}",
                f"{t.dead_rows:,}",
                f"{t.bloat_ratio:.0%}",
            )
        console.print(tables)
        console.print(
            f"unused indexes ({len(shard.unused_indexes)}): "
            + (", ".join(shard.unused_indexes) or "none")
        )
        console.print(
            "duplicate indexes: "
            + ("; ".join(" = ".join(group) for group in shard.duplicate_indexes) or "none")
        )
        for tx in shard.long_transactions:
            console.print(
                f"[yellow]long transaction[/] pid {tx.pid} ({tx.user}, {tx.state}) "
                f"open {tx.seconds:.0f} s on {tx.node}"
            )
        if shard.hidden_sessions:
            console.print(f"{shard.hidden_sessions} session(s) of other roles (times hidden)")
        for gid, age in shard.prepared_transactions:
            console.print(f"[yellow]prepared transaction[/] {gid}, {age:.0f} s old")
        for name, active, held in shard.slots:
            state = "active" if active else "[red]inactive[/]"
            console.print(f"replication slot {name} ({state}) holds {_mib(held)} of WAL")
        for error in shard.errors:
            console.print(f"[red]not read:[/] {error}")
