"""PostgreSQL COPY, the reference every bulk path is measured against.

:func:`copy_rows` streams rows into one table of one node with ``COPY ... FROM
STDIN`` (text format), in batches, so memory stays bounded by one batch. It is
the ``bulk_load`` baseline and the way the benchmark prepares its own data.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg2 import sql

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: object) -> str:
    """Return ``value`` as one field of PostgreSQL's COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | float | Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\\\x" + bytes(value).hex()
    if isinstance(value, dict | list):
        return json.dumps(value).translate(_ESCAPES)
    return str(value).translate(_ESCAPES)


def copy_rows(
    dbapi_connection: Any,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    batch_rows: int = 20_000,
) -> int:
    """COPY ``rows`` into ``table`` over a psycopg2 connection; return the row count.

    Each batch is one ``COPY`` statement inside the connection's current
    transaction; the caller commits.
    """
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    query = statement.as_string(dbapi_connection)
    total = 0
    buffer = io.StringIO()
    pending = 0
    with dbapi_connection.cursor() as cur:
        for row in rows:
            buffer.write("\t".join(copy_text(v) for v in row))
            buffer.write("\n")
            pending += 1
            if pending >= batch_rows:
                buffer.seek(0)
                cur.copy_expert(query, buffer)
                total += pending
                buffer = io.StringIO()
                pending = 0
        if pending:
            buffer.seek(0)
            cur.copy_expert(query, buffer)
            total += pending
    return total
