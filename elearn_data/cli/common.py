"""Shared pieces of the CLI: the console, error handling, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from elearn_data.errors import ElearnDataError

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
