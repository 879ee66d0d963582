"""Operator commands that work on a running platform: recover."""

from __future__ import annotations

from typing import Annotated

import typer

from elearn_data.cli.common import UP_HINT, console, domain_errors, err_console, print_json
from elearn_data.config import load_settings
from elearn_data.database import Database


def recover(
    grace: Annotated[
        float | None,
        typer.Option(
            help="Only transactions prepared at least this many seconds ago "
            "(default: the library's twophase_grace_s, so live transactions are left alone; "
            "0 only when no writer can be running)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Resolve in-doubt two-phase transactions from their decision records."""
    with domain_errors():
        settings = load_settings().model_copy(
            update={"recover_on_connect": False, "recover_interval_s": 0.0, "outbox_relay": False}
        )
        with Database(settings, application="elearn-recover") as db:
            report = db.recover(grace_s=grace)
        if as_json:
            print_json(
                {
                    "committed": report.committed,
                    "rolled_back": report.rolled_back,
                    "unreachable": report.unreachable,
                    "forgotten_decisions": report.forgotten_decisions,
                }
            )
        else:
            for shard, gid in report.committed:
                console.print(f"committed   {gid} on {shard}")
            for shard, gid in report.rolled_back:
                console.print(f"rolled back {gid} on {shard}")
            console.print(
                f"{report.resolved} in-doubt transaction(s) resolved"
                + (f"; unreachable: {', '.join(report.unreachable)}" if report.unreachable else "")
            )
        if report.unreachable:
            err_console.print(f"[dim]hint:[/] {UP_HINT}", soft_wrap=True)
            raise typer.Exit(2)
