"""Shared pieces of the CLI: the console, error handling, JSON output."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings, url_hosts
from elearn_data.errors import ConfigurationError, ElearnDataError, InvalidState, ShardUnavailable

console = Console()
err_console = Console(stderr=True)


UP_HINT = "run `elearn up` (it builds or starts the embedded cluster and migrates it)"


def one_line_text(text: str) -> str:
    """Return the first line of ``text``, without SQLAlchemy's background link."""
    lines = text.strip().splitlines()
    first = lines[0].strip() if lines else ""
    return re.sub(r"\s*\(Background on this error at: [^)]*\)", "", first)


def one_line(exc: BaseException) -> str:
    """Return the first line of an error's message, without SQLAlchemy's background link."""
    return one_line_text(str(exc)) or type(exc).__name__


def hint_for(exc: BaseException) -> str | None:
    """Return what to do about ``exc``, when there is something obvious."""
    if isinstance(exc, ShardUnavailable):
        return f"is the cluster running? `elearn cluster status` shows each node; {UP_HINT}"
    if isinstance(exc, ConfigurationError):
        message = str(exc)
        if "no shards configured" in message or "no embedded cluster" in message:
            return UP_HINT
        if "ELEARN_SHARDS" in message or "EnvSettingsSource" in message:
            return "fix the variable (ELEARN_SHARDS is JSON), or unset it and " + UP_HINT
    return None


def print_error(exc: BaseException) -> None:
    """Print ``exc`` as one line (and a hint line when there is one) on stderr."""
    # Messages are text, not markup: "pip install 'elearn-data[seed]'" keeps its brackets.
    message = escape(one_line(exc))
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    hint = hint_for(exc)
    if hint is not None:
        err_console.print(f"[dim]hint:[/] {escape(hint)}", soft_wrap=True, highlight=False)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Turn an ElearnDataError into a one-line message (and a hint) and exit code 1."""
    try:
        yield
    except ElearnDataError as exc:
        print_error(exc)
        raise typer.Exit(1) from exc


def print_table(table: Table) -> None:
    """Print ``table`` so that no cell is cut at any terminal width (cells wrap instead)."""
    for column in table.columns:
        column.overflow = "fold"
    console.print(table)


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
