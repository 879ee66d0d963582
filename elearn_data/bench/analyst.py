"""Set-up of the ``analyst_sql`` benchmark: seeded shards and their single-database union.

The baseline is "one PostgreSQL database holding every shard": in the first
shard's scratch database, a schema with one table per analyst-visible table
(:mod:`~elearn_data.analytics.visibility`), filled by COPY from every shard's
primary (learner-owned tables: every shard's rows plus a ``shard`` column;
catalog tables: one copy), given the models' primary keys and indexes, then
analyzed -- the same rows, columns and indexes the analyst's views show.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg2 import sql
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex

from elearn_data.analytics.visibility import SHARD_COLUMN, visible_tables
from elearn_data.bench.data import owner_connection
from elearn_data.bench.measure import RssSampler, current_rss
from elearn_data.config import Settings
from elearn_data.models import Base
from elearn_data.seeding import seed

if TYPE_CHECKING:
    from elearn_data.analytics import Analytics
    from elearn_data.database import Database

MIB = 1024 * 1024


def seeded(db: Database, scale: str) -> dict[str, Any]:
    """Reseed the scratch shards at ``scale`` (deterministic); return what was loaded."""
    report = seed(db, scale=scale, seed=16, reset=True, content_limit=0)
    return {"name": scale, "rows": report.rows}


@dataclass
class Union:
    """The single-database copy: a psycopg2 connection whose search_path is the union schema."""

    conn: Any
    schema: str
    rows: dict[str, int] = field(default_factory=dict)

    def rows_of(self, query: str) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(query)
            rows = [tuple(r) for r in cur.fetchall()]
        self.conn.rollback()
        return rows

    def close(self) -> None:
        try:
            with self.conn.cursor() as cur:
                cur.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
                )
            self.conn.commit()
        finally:
            self.conn.close()


def build_union(settings: Settings, schema: str, *, personal: bool = False) -> Union:
    """Build the union of every shard's analyst-visible rows in the first shard's database.

    ``personal=True`` copies the personal columns too (names, emails: what the
    service API shows and analysts do not see), for baselines of service calls.
    """
    shards = list(settings.shard_names)
    home = settings.home_shard
    target = owner_connection(settings, home)
    union = Union(target, schema)
    sources = {s: owner_connection(settings, s) for s in shards}
    try:
        with target.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for table in visible_tables(personal=personal):
            columns = sql.SQL(", ").join(map(sql.Identifier, table.columns))
            extra = sql.SQL(", ''::text AS {}").format(sql.Identifier(SHARD_COLUMN))
            with target.cursor() as cur:
                cur.execute(
                    sql.SQL("CREATE TABLE {}.{} AS SELECT {}{} FROM public.{} WITH NO DATA").format(
                        sql.Identifier(schema),
                        sql.Identifier(table.name),
                        columns,
                        extra if table.union else sql.SQL(""),
                        sql.Identifier(table.name),
                    )
                )
            for shard in shards if table.union else [home]:
                marker = sql.SQL(", {}").format(sql.Literal(shard)) if table.union else sql.SQL("")
                with tempfile.TemporaryFile(mode="w+b") as buffer:
                    with sources[shard].cursor() as cur:
                        cur.copy_expert(
                            sql.SQL("COPY (SELECT {}{} FROM public.{}) TO STDOUT").format(
                                columns, marker, sql.Identifier(table.name)
                            ),
                            buffer,
                        )
                    sources[shard].rollback()
                    buffer.seek(0)
                    with target.cursor() as cur:
                        cur.copy_expert(
                            sql.SQL("COPY {}.{} FROM STDIN").format(
                                sql.Identifier(schema), sql.Identifier(table.name)
                            ),
                            buffer,
                        )
            with target.cursor() as cur:
                cur.execute(
                    sql.SQL("SELECT count(*) FROM {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(table.name)
                    )
                )
                union.rows[table.name] = int(cur.fetchone()[0])
            _index(target, schema, table.name, set(table.columns))
        target.commit()
        target.autocommit = True
        with target.cursor() as cur:
            for table in visible_tables(personal=personal):
                cur.execute(
                    sql.SQL("ANALYZE {}.{}").format(
                        sql.Identifier(schema), sql.Identifier(table.name)
                    )
                )
        target.autocommit = False
        with target.cursor() as cur:
            cur.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(schema)))
            cur.execute("SET TimeZone = 'UTC'")
        target.commit()
    except BaseException:
        target.rollback()
        union.close()
        raise
    finally:
        for conn in sources.values():
            conn.close()
    return union


def _index(conn: Any, schema: str, name: str, columns: set[str]) -> None:
    """Give the union table the model's primary key and indexes (those over visible columns)."""
    model = Base.metadata.tables[name]
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SET LOCAL search_path = {}").format(sql.Identifier(schema)))
        key = [c.name for c in model.primary_key.columns]
        if key and set(key) <= columns:
            cur.execute(
                sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                    sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, key))
                )
            )
        for index in model.indexes:
            if not {c.name for c in index.columns} <= columns:
                continue
            ddl = str(CreateIndex(index).compile(dialect=dialect))
            cur.execute(ddl)
        cur.execute("SET LOCAL search_path = public")


def big_result(analytics: Analytics, rows: int) -> dict[str, Any]:
    """Fetch a ``rows``-row result through sql_arrow() and sql(); report time and peak RSS."""
    query = (
        "SELECT e.id, e.user_id, e.course_id, e.status, e.enrolled_at, g.i "
        "FROM enrollments e, range($copies) g(i) LIMIT $rows"
    )
    count = int(analytics.sql_arrow("SELECT count(*) AS n FROM enrollments").column(0)[0].as_py())
    params = {"copies": max(1, -(-rows // max(1, count))), "rows": rows}
    figures: dict[str, Any] = {"rows": rows}
    for label, fetch in (("arrow", analytics.sql_arrow), ("pandas", analytics.sql)):
        before = current_rss()
        with RssSampler(interval_s=0.005) as rss:
            start = time.perf_counter()
            result = fetch(query, params)
            seconds = time.perf_counter() - start
        got = result.num_rows if label == "arrow" else len(result)
        figures[label] = {
            "rows": got,
            "seconds": round(seconds, 3),
            "peak_rss_mib": round(rss.peak_bytes / MIB, 1),
            "rss_growth_mib": round((rss.peak_bytes - before) / MIB, 1),
        }
        del result
    return figures
