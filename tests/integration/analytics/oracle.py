"""A single-database copy of the shards: the oracle of the analyst SQL tests.

One PostgreSQL database (on the first shard's primary) holds, for every table
analysts see, the union of every shard's rows with a ``shard`` column
(learner-owned tables) or one shard's copy (catalog tables), read as the
superuser from the primaries with COPY. The same SQL run there and through
``db.analytics.sql`` must give the same rows.

The visible columns come from docs/schema.md's rule (placement) restated here
on purpose, not from the code under test: learner and home tables are unions,
reference tables appear once, directory and local tables are absent, and
``users.password_hash`` and the personal columns (email, names, phone, biography,
avatar, birth date, card details) are hidden.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from psycopg2 import sql
from pytest_postgresql.janitor import DatabaseJanitor

from elearn_data.cluster.local import SUPERUSER, LocalCluster

UNION = (
    "users",
    "user_profiles",
    "enrollments",
    "lesson_progress",
    "course_reviews",
    "payment_methods",
    "transactions",
    "invoices",
    "course_seats",
)
ONCE = ("course_categories", "courses", "course_modules", "course_lessons")
# Secrets and personal data (direct identifiers, contact and card details).
HIDDEN_COLUMNS = {
    "users": {"password_hash", "email", "first_name", "last_name"},
    "user_profiles": {"phone", "bio", "avatar_url", "date_of_birth"},
    "payment_methods": {"card_last_four", "expiry_month", "expiry_year"},
}


@dataclass
class Oracle:
    conn: Any
    tables: dict[str, list[str]]

    def rows(self, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(query, params)
            return [tuple(r) for r in cur.fetchall()]


def _columns(cur: Any, table: str) -> list[tuple[str, str]]:
    cur.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        (f"public.{table}",),
    )
    return [(str(n), str(t)) for n, t in cur.fetchall()]


@contextmanager
def single_database(cluster: LocalCluster) -> Iterator[Oracle]:
    """Build the oracle database, yield it, drop it."""
    state = cluster.state()
    home = state.primary_of(state.shards[0])
    dbname = f"elearn_oracle_{secrets.token_hex(4)}"
    janitor = DatabaseJanitor(
        user=SUPERUSER,
        password=state.superuser_password,
        host="127.0.0.1",
        port=home.port,
        dbname=dbname,
    )
    janitor.init()
    target = cluster.admin_connect(home, dbname=dbname)
    try:
        with target.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'")
        sources = {
            s: cluster.admin_connect(state.primary_of(s), dbname="elearn") for s in state.shards
        }
        tables: dict[str, list[str]] = {}
        try:
            first = sources[state.shards[0]]
            for table in (*UNION, *ONCE):
                with first.cursor() as cur:
                    columns = [
                        (n, t)
                        for n, t in _columns(cur, table)
                        if n not in HIDDEN_COLUMNS.get(table, ())
                    ]
                names = [n for n, _ in columns]
                defs = [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns]
                if table in UNION:
                    defs.append(sql.SQL("shard text NOT NULL"))
                with target.cursor() as cur:
                    cur.execute(
                        sql.SQL("CREATE TABLE {} ({})").format(
                            sql.Identifier(table), sql.SQL(", ").join(defs)
                        )
                    )
                copy_from = sources if table in UNION else {state.shards[0]: first}
                for shard, source in copy_from.items():
                    buffer = io.StringIO()
                    with source.cursor() as cur:
                        cur.copy_expert(
                            sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT").format(
                                sql.SQL(", ").join(map(sql.Identifier, names)),
                                sql.Identifier(table),
                            ),
                            buffer,
                        )
                    text = buffer.getvalue()
                    if table in UNION and text:
                        text = "".join(f"{line}\t{shard}\n" for line in text.splitlines())
                    with target.cursor() as cur:
                        target_columns = names + (["shard"] if table in UNION else [])
                        cur.copy_expert(
                            sql.SQL("COPY {} ({}) FROM STDIN").format(
                                sql.Identifier(table),
                                sql.SQL(", ").join(map(sql.Identifier, target_columns)),
                            ),
                            io.StringIO(text),
                        )
                tables[table] = names + (["shard"] if table in UNION else [])
                with target.cursor() as cur:
                    cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
        finally:
            for source in sources.values():
                source.close()
        target.autocommit = False
        yield Oracle(target, tables)
    finally:
        target.close()
        janitor.drop()


def normalise(value: Any) -> Any:
    """One comparable form for both engines' values (numbers to 6 decimals, ids as text)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        return round(float(value), 6)
    if isinstance(value, list | tuple):
        return tuple(normalise(v) for v in value)
    return str(value) if not hasattr(value, "isoformat") else value


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, str(type(v)), str(v)) for v in row)


def same_rows(left: list[tuple[Any, ...]], right: list[tuple[Any, ...]], *, ordered: bool) -> bool:
    a = [tuple(normalise(v) for v in row) for row in left]
    b = [tuple(normalise(v) for v in row) for row in right]
    if not ordered:
        a, b = sorted(a, key=_key), sorted(b, key=_key)
    return a == b
