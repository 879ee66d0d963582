"""Shared pieces of the CLI: the console, error handling, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings, url_hosts
from elearn_data.errors import ElearnDataError, InvalidState

console = Console()
err_console = Console(stderr=True)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn an ElearnDataError into a one-line message and exit code 1."""
    try:
        yield
    except ElearnDataError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from exc


def print_json(payload: Any) -> None:
    """Write ``payload`` as JSON to stdout (no colour, machine-readable)."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def progress_printer() -> Callable[[str], None]:
    """Return a callback that prints progress lines to stderr."""

    def emit(message: str) -> None:
        err_console.print(f"[dim]•[/] {message}")

    return emit


def is_embedded(settings: Settings) -> bool:
    """Return True when ``settings`` describe the embedded cluster under ``settings.home``."""
    cluster = LocalCluster(settings.home)
    if not cluster.exists:
        return False
    state = cluster.state()
    if set(settings.shard_names) != set(state.shards):
        return False
    for shard in settings.shard_names:
        ports = {port for _, port in url_hosts(settings.shards[shard].primary or "")}
        if state.primary_of(shard).port not in ports:
            return False
    return True


def refuse_unless_embedded(settings: Settings, action: str, *, force: bool) -> None:
    """Refuse a destructive ``action`` on a cluster that is not the embedded one, unless forced.

    Raises:
        InvalidState: the settings name another cluster and ``force`` is False.
    """
    if force or is_embedded(settings):
        return
    raise InvalidState(
        f"refusing to {action}: the settings do not describe the embedded cluster under "
        f"{settings.home} (pass --force to run it on this cluster anyway)"
    )
