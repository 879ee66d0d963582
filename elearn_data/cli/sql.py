"""``elearn sql QUERY``: analyst SQL over every shard (``db.analytics.sql``), printed or saved."""

from __future__ import annotations

import csv
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from elearn_data.cli.common import console, domain_errors
from elearn_data.config import load_settings
from elearn_data.database import Database
from elearn_data.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

# The rich table shows at most this many rows (the others are counted).
MAX_SHOWN = 200


def _params(items: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidInput(f"--param must look like name=value, not {item!r}")
        values[name] = value
    return values


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in table.to_pylist()]


def sql(
    query: Annotated[str, typer.Argument(help="One read-only SQL query (DuckDB dialect).")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="A $name parameter as name=value (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="An array of row objects.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the result to FILE.parquet.")
    ] = None,
) -> None:
    """Run analyst SQL over every shard as if one database held them all."""
    with domain_errors():
        if sum([as_json, as_csv, out is not None]) > 1:
            raise InvalidInput("choose one of --json, --csv and --out")
        if out is not None and out.suffix != ".parquet":
            raise InvalidInput(f"--out writes Parquet: the file name must end in .parquet: {out}")
        values = _params(param or [])
        settings = load_settings().model_copy(
            update={"recover_on_connect": False, "outbox_relay": False}
        )
        with Database(settings, application="elearn-sql") as db:
            table = db.analytics.sql_arrow(query, values)
        if out is not None:
            import pyarrow.parquet as pq  # noqa: PLC0415

            pq.write_table(table, out)
            console.print(f"{table.num_rows:,} row(s) written to {out}")
        elif as_json:
            sys.stdout.write(json.dumps(_rows(table), indent=2) + "\n")
        elif as_csv:
            writer = csv.writer(sys.stdout)
            writer.writerow(table.column_names)
            for row in _rows(table):
                writer.writerow(["" if v is None else v for v in row.values()])
        else:
            _show(table)


def _show(table: pa.Table) -> None:
    view = Table(show_header=True, header_style="bold")
    for name in table.column_names:
        view.add_column(name)
    for row in _rows(table.slice(0, MAX_SHOWN)):
        view.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(view)
    hidden = table.num_rows - min(table.num_rows, MAX_SHOWN)
    suffix = f" ({hidden:,} not shown: use --csv, --json or --out)" if hidden else ""
    console.print(f"[dim]{table.num_rows:,} row(s){suffix}[/]")
