"""The canned analytics' per-shard partials, computed by DuckDB over every shard.

Each function returns what the fan-out's statements return -- the same
partial rows, column for column, one set per shard (grouped by the views'
``shard`` column) -- plus ``{shard: node label}`` of the nodes read, so that
:mod:`~elearn_data.analytics.service` merges them with the very same rules and
the frames come out identical whichever engine read the shards. The engine is
:class:`~elearn_data.analytics.sql.AnalystSQL` (``db.analytics.sql``): the
same replicas (or primaries) that have replayed the caller's causal token,
each read at one snapshot for the whole query.

Which canned analytics run here is decided by measurement (``elearn bench
--only canned_on_duckdb``, docs/performance.md): :data:`ON_DUCKDB`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from elearn_data.analytics.sql import AnalystSQL

# The canned analytics that DuckDB answers faster than the fan-out (measured; see
# docs/performance.md, "canned_on_duckdb"). The others stay on the fan-out. None
# so far: at `medium` (50k enrollments) the fan-out was 1.5-7x faster for each,
# at 1M enrollments 1.1-10x (enrollments_by_region the closest, DuckDB 0.93x);
# `large` was not measured. A name added here needs no other change.
ON_DUCKDB: frozenset[str] = frozenset()

# Every analytic this module can compute (the bench compares each with the fan-out).
SUPPORTED = (
    "platform_stats",
    "enrollments_by_region",
    "revenue_by_month",
    "course_funnel",
    "instructor_stats",
)

# Revenue counts completed purchases (refunded ones too) and completed refunds, as in
# get_platform_stats / get_revenue_by_month.
PLATFORM_STATS = (
    "WITH u AS (SELECT shard, count(*) AS users,"
    " count(*) FILTER (WHERE role = 'student') AS students,"
    " count(*) FILTER (WHERE role = 'instructor') AS instructors FROM users GROUP BY shard),"
    " e AS (SELECT shard, count(*) AS enrollments,"
    " count(*) FILTER (WHERE status = 'active') AS active_enrollments,"
    " count(*) FILTER (WHERE status = 'completed') AS completed_enrollments"
    " FROM enrollments GROUP BY shard),"
    " t AS (SELECT shard, sum(CASE WHEN type = 'purchase' THEN amount ELSE -amount END)"
    " AS revenue FROM transactions"
    " WHERE ((type = 'purchase' AND status IN ('completed', 'refunded'))"
    " OR (type = 'refund' AND status = 'completed')) GROUP BY shard),"
    " c AS (SELECT count(*) AS courses,"
    " count(*) FILTER (WHERE status = 'published') AS published_courses FROM courses)"
    " SELECT s.shard, u.users, u.students, u.instructors, c.courses, c.published_courses,"
    " e.enrollments, e.active_enrollments, e.completed_enrollments, t.revenue"
    " FROM (SELECT unnest($shards) AS shard) s CROSS JOIN c"
    " LEFT JOIN u ON u.shard = s.shard LEFT JOIN e ON e.shard = s.shard"
    " LEFT JOIN t ON t.shard = s.shard"
)

ENROLLMENTS_BY_REGION = (
    "SELECT u.region, count(*) AS enrollments,"
    " count(*) FILTER (WHERE e.status = 'active') AS active,"
    " count(*) FILTER (WHERE e.status = 'completed') AS completed,"
    " count(*) FILTER (WHERE e.status = 'dropped') AS dropped,"
    " count(DISTINCT e.user_id) AS learners"
    " FROM enrollments e JOIN users u ON u.id = e.user_id GROUP BY u.region"
)

REVENUE_BY_MONTH = (
    "SELECT shard, CAST(date_trunc('month', completed_at) AS DATE) AS month, currency,"
    " sum(amount) FILTER (WHERE type = 'purchase') AS purchases,"
    " sum(amount) FILTER (WHERE type = 'refund') AS refunds,"
    " sum(CASE WHEN type = 'purchase' THEN amount ELSE -amount END) AS revenue,"
    " count(*) AS transactions"
    " FROM transactions WHERE ((type = 'purchase' AND status IN ('completed', 'refunded'))"
    " OR (type = 'refund' AND status = 'completed'))"
    " AND ($start IS NULL OR completed_at >= CAST($start AS TIMESTAMPTZ))"
    " AND ($end IS NULL OR completed_at < CAST($end AS TIMESTAMPTZ) + INTERVAL 1 DAY)"
    " GROUP BY ALL"
)

COURSE_FUNNEL = (
    "SELECT (SELECT count(*) FROM courses WHERE id = $course) AS found, e.shard,"
    " count(*) AS enrolled,"
    " count(*) FILTER (WHERE e.completed_lessons >= 1) AS started,"
    " count(*) FILTER (WHERE e.progress_percent >= 50) AS halfway,"
    " count(*) FILTER (WHERE e.status = 'completed') AS completed,"
    " count(*) FILTER (WHERE EXISTS ("
    "   SELECT 1 FROM course_reviews r WHERE r.enrollment_id = e.id)) AS reviewed"
    " FROM enrollments e WHERE e.course_id = $course GROUP BY ALL"
)
COURSE_FOUND = "SELECT count(*) AS found FROM courses WHERE id = $course"

INSTRUCTOR_STATS = (
    "WITH taught AS (SELECT id FROM courses WHERE instructor_id = $instructor),"
    " en AS (SELECT shard, count(*) FILTER (WHERE status <> 'dropped') AS enrollments,"
    " count(DISTINCT user_id) FILTER (WHERE status = 'active') AS active_students"
    " FROM enrollments WHERE course_id IN (SELECT id FROM taught) GROUP BY shard),"
    " ra AS (SELECT shard, sum(rating) AS rating_sum, count(*) AS rating_count"
    " FROM course_reviews WHERE course_id IN (SELECT id FROM taught) GROUP BY shard),"
    " pa AS (SELECT shard,"
    " sum(CASE WHEN type = 'purchase' THEN amount ELSE -amount END) AS revenue"
    " FROM transactions WHERE course_id IN (SELECT id FROM taught)"
    " AND ((type = 'purchase' AND status IN ('completed', 'refunded'))"
    " OR (type = 'refund' AND status = 'completed'))"
    " GROUP BY shard)"
    " SELECT s.shard, (SELECT count(*) FROM taught) AS courses, en.enrollments,"
    " en.active_students, ra.rating_sum, ra.rating_count, pa.revenue,"
    " (SELECT role FROM users WHERE id = $instructor) AS role"
    " FROM (SELECT unnest($shards) AS shard) s LEFT JOIN en ON en.shard = s.shard"
    " LEFT JOIN ra ON ra.shard = s.shard LEFT JOIN pa ON pa.shard = s.shard"
)


def exact_form(frame: pd.DataFrame) -> tuple[list[str], list[str], list[list[str]]]:
    """A frame's columns, dtypes and values as text (``Decimal('0')`` is not ``Decimal('0.00')``).

    Two frames with the same exact form are the same result, to the digit.
    """
    return (
        [str(c) for c in frame.columns],
        [str(t) for t in frame.dtypes],
        [[repr(v) for v in row] for row in frame.itertuples(index=False)],
    )


def _zero_if_null(rows: list[dict[str, Any]], counts: Sequence[str], money: Sequence[str]) -> None:
    # PostgreSQL's coalesce(..., 0): an integer 0 for counts, a numeric 0 (scale 0) for money.
    for row in rows:
        for column in counts:
            if row.get(column) is None:
                row[column] = 0
        for column in money:
            if row.get(column) is None:
                row[column] = Decimal(0)


def platform_partials(
    engine: AnalystSQL, shards: Sequence[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """``{shard: get_platform_stats() row}`` (the catalog counts: the local shard's copy)."""
    table, nodes = engine.run(PLATFORM_STATS, {"shards": list(shards)})
    rows = table.to_pylist()
    counts = ("users", "students", "instructors", "enrollments")
    _zero_if_null(rows, (*counts, "active_enrollments", "completed_enrollments"), ("revenue",))
    by_shard = {str(row.pop("shard")): row for row in rows}
    return {shard: by_shard[shard] for shard in shards}, nodes


def region_rows(engine: AnalystSQL) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Rows of ``ENROLLMENTS_BY_REGION`` (one per region with enrollments)."""
    table, nodes = engine.run(ENROLLMENTS_BY_REGION)
    return table.to_pylist(), nodes


def revenue_rows(
    engine: AnalystSQL, start: Any, end: Any
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every shard's ``get_revenue_by_month(start, end)`` rows, together."""
    table, nodes = engine.run(REVENUE_BY_MONTH, {"start": start, "end": end})
    rows = table.to_pylist()
    _zero_if_null(rows, ("transactions",), ("purchases", "refunds", "revenue"))
    for row in rows:
        del row["shard"]
    return rows, nodes


def funnel_partials(
    engine: AnalystSQL, course_id: Any
) -> tuple[list[dict[str, Any]] | None, dict[str, str]]:
    """The shards' funnel partials, or None when the catalog has no such course."""
    params = {"course": str(course_id)}
    table, nodes = engine.run(COURSE_FUNNEL, params)
    rows = table.to_pylist()
    if not rows:
        found, nodes = engine.run(COURSE_FOUND, params)
        if not int(found.column(0)[0].as_py()):
            return None, nodes
        return [], nodes
    if not int(rows[0]["found"]):
        return None, nodes
    for row in rows:
        del row["found"], row["shard"]
    return rows, nodes


def instructor_partials(
    engine: AnalystSQL, instructor_id: Any, shards: Sequence[str]
) -> tuple[list[dict[str, Any]], str | None, dict[str, str]]:
    """The shards' ``get_instructor_stats`` rows and the user's role (None: no such user)."""
    table, nodes = engine.run(
        INSTRUCTOR_STATS, {"instructor": str(instructor_id), "shards": list(shards)}
    )
    rows = table.to_pylist()
    role = rows[0]["role"] if rows else None
    for row in rows:
        del row["role"], row["shard"]
    counts = ("enrollments", "active_students", "rating_sum", "rating_count")
    _zero_if_null(rows, counts, ("revenue",))
    return rows, role, nodes
