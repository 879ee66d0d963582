"""``elearn cluster ...``: build, inspect and break the embedded cluster."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from elearn_data.cli.common import (
    console,
    domain_errors,
    print_json,
    print_table,
    progress_printer,
)
from elearn_data.cluster.ha import MAX_REPLICAS, HACluster
from elearn_data.cluster.local import DEFAULT_BASE_PORT, LocalCluster, NodeStatus, Role
from elearn_data.config import Durability, elearn_home

app = typer.Typer(help="Build, start, stop, promote and inspect the embedded cluster.")


def _cluster() -> LocalCluster:
    """The cluster under ELEARN_HOME: run by Patroni when it was built with ``--ha``."""
    home = elearn_home()
    return HACluster(home) if HACluster.is_ha(home) else LocalCluster(home)


def status_table(nodes: list[NodeStatus]) -> Table:
    """Render node statuses as a table."""
    table = Table(title="elearn cluster")
    for column in ("shard", "node", "role", "port", "up", "in recovery", "lag (bytes)", "sync"):
        table.add_column(column)
    for n in nodes:
        table.add_row(
            n.shard,
            n.name,
            n.role,
            str(n.port),
            "[green]yes[/]" if n.up else "[red]DOWN[/]",
            "-" if n.in_recovery is None else ("yes" if n.in_recovery else "no"),
            "-" if n.replay_lag_bytes is None else str(n.replay_lag_bytes),
            n.sync_state or "-",
        )
    return table


@app.command()
def up(
    replicas: Annotated[int, typer.Option(help="Streaming replicas per primary.")] = 1,
    base_port: Annotated[
        int | None,
        typer.Option(
            help=f"First port of a new cluster (default: the first free range from "
            f"{DEFAULT_BASE_PORT}, below 32768)."
        ),
    ] = None,
    durability: Annotated[str | None, typer.Option(help="async or sync replication.")] = None,
    ha: Annotated[
        bool,
        typer.Option(
            "--ha",
            help="Run every shard under Patroni with etcd: automatic failover "
            f"(at most {MAX_REPLICAS} replicas).",
        ),
    ] = False,
) -> None:
    """Build and start one primary and N replicas per shard (idempotent)."""
    with domain_errors():
        started = time.monotonic()
        mode: Durability | None = None
        if durability is not None:
            if durability not in ("async", "sync"):
                raise typer.BadParameter("durability must be async or sync")
            mode = "sync" if durability == "sync" else "async"
        home = elearn_home()
        target = HACluster(home) if ha or HACluster.is_ha(home) else LocalCluster(home)
        nodes = target.up(
            replicas=replicas, base_port=base_port, durability=mode, progress=progress_printer()
        )
        print_table(status_table(nodes))
        console.print(f"cluster ready in {time.monotonic() - started:.1f} s under {elearn_home()}")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per node.")] = False,
) -> None:
    """Show every node: role, port, reachability, recovery state, replication lag."""
    with domain_errors():
        nodes = _cluster().status()
        if as_json:
            print_json([n.to_dict() for n in nodes])
        else:
            print_table(status_table(nodes))
        if not all(n.up for n in nodes):
            raise typer.Exit(2)


@app.command()
def down(
    purge: Annotated[bool, typer.Option(help="Also delete the data and settings.")] = False,
) -> None:
    """Stop every node."""
    with domain_errors():
        _cluster().down(purge=purge)
        console.print("cluster stopped" + (" and purged" if purge else ""))


def _role(value: str) -> Role:
    if value not in ("primary", "replica"):
        raise typer.BadParameter("role must be primary or replica")
    return "primary" if value == "primary" else "replica"


@app.command()
def stop(
    shard: str,
    role: Annotated[str, typer.Option(help="primary or replica")] = "replica",
    immediate: Annotated[bool, typer.Option(help="Kill without a clean shutdown.")] = False,
) -> None:
    """Stop a shard's primary or replicas (fault drills)."""
    with domain_errors():
        nodes = _cluster().stop(shard, _role(role), mode="immediate" if immediate else "fast")
        console.print(f"stopped {', '.join(n.name for n in nodes) or 'nothing'}")


@app.command()
def start(
    shard: str,
    role: Annotated[str, typer.Option(help="primary or replica")] = "replica",
) -> None:
    """Start a shard's stopped primary or replicas (a running one is left alone)."""
    with domain_errors():
        local = _cluster()
        wanted = _role(role)
        state = local.state()
        running = {
            n.name
            for n in state.nodes_of(shard)
            if n.role == wanted and not n.needs_rebuild and local.is_running(n)
        }
        nodes = local.start(shard, wanted)
        started = [n.name for n in nodes if n.name not in running]
        already = [n.name for n in nodes if n.name in running]
        if started:
            console.print(f"started {', '.join(started)}")
        if already:
            console.print(f"{', '.join(already)} already running")
        if not nodes:
            console.print(f"shard {shard} has no {wanted}")


@app.command()
def failover(shard: str) -> None:
    """Promote the shard's replica to primary (an HA cluster: a Patroni switchover)."""
    with domain_errors():
        started = time.monotonic()
        target = _cluster()
        node = target.failover(shard, progress=progress_printer())
        after = (
            "the old primary streams from it (Patroni switchover)"
            if isinstance(target, HACluster)
            else "run `elearn cluster up` to rebuild a replica"
        )
        console.print(
            f"{node.name} (port {node.port}) is the primary of shard {shard} "
            f"after {time.monotonic() - started:.2f} s; {after}"
        )


@app.command("durability")
def set_durability(mode: str) -> None:
    """Switch replication between async and sync (sync: a commit waits for a replica)."""
    with domain_errors():
        if mode not in ("async", "sync"):
            raise typer.BadParameter("mode must be async or sync")
        _cluster().set_durability("sync" if mode == "sync" else "async")
        console.print(f"durability is now {mode}")
