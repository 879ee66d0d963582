"""Raw-row access for the seeding tests: superuser connections to every shard primary.

The checks here recompute everything from the rows themselves, independently
of the generator and of the loader's own verification.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2.extras

from elearn_data.cluster.local import LocalCluster
from elearn_data.content import ContentStore
from elearn_data.content.documents import CourseContent, UserPreferences

REFERENCE_TABLES = (
    "course_categories",
    "courses",
    "course_modules",
    "course_lessons",
    "assessments",
    "assessment_questions",
)
LEARNER_TABLES = (
    "users",
    "user_profiles",
    "enrollments",
    "lesson_progress",
    "course_reviews",
    "assessment_attempts",
    "attempt_answers",
    "payment_methods",
    "transactions",
    "invoices",
)
ALL_TABLES = (
    *REFERENCE_TABLES,
    "course_seats",
    "course_stats",
    "email_directory",
    *LEARNER_TABLES,
)


@contextmanager
def primary(cluster: LocalCluster, shard: str) -> Iterator[Any]:
    """A superuser cursor on the shard's primary (autocommit)."""
    state = cluster.state()
    conn = cluster.admin_connect(state.primary_of(shard), dbname="elearn")
    psycopg2.extras.register_uuid(conn_or_curs=conn)
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def rows(cluster: LocalCluster, shard: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Return every row of a query on one shard primary."""
    with primary(cluster, shard) as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


def scalar(cluster: LocalCluster, shard: str, sql: str, params: Any = None) -> Any:
    """Return the single value of a query on one shard primary."""
    return rows(cluster, shard, sql, params)[0][0]


def table_checksums(cluster: LocalCluster) -> dict[tuple[str, str], tuple[int, str]]:
    """Return (row count, md5 of every row in a fixed order) per (shard, table)."""
    result: dict[tuple[str, str], tuple[int, str]] = {}
    for shard in cluster.state().shards:
        with primary(cluster, shard) as cur:
            for table in ALL_TABLES:
                cur.execute(
                    "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' "
                    f"ORDER BY t::text)), '') FROM {table} t"
                )
                count, digest = cur.fetchone()
                result[(shard, table)] = (count, digest)
    return result


def content_checksum(store: ContentStore) -> tuple[int, int, str]:
    """Return (content documents, preferences documents, md5 of both without _id)."""
    gateway = store._gateway
    digest = hashlib.md5()
    counts = []
    for document, key in ((CourseContent, "content_id"), (UserPreferences, "user_id")):
        docs = list(gateway.collection(document).find({}, {"_id": 0}))
        counts.append(len(docs))
        for doc in sorted(docs, key=lambda d: str(d[key])):
            digest.update(repr(sorted(doc.items())).encode())
    return counts[0], counts[1], digest.hexdigest()
