"""The per-shard statements of the analytics layer: each returns aggregates, never raw rows.

Where the database already offers a shard-local function (``get_platform_stats``,
``get_instructor_stats``, ``get_revenue_by_month``, ``get_popular_courses``,
revision 0002), the analytics layer calls it; the other statements live here.
Every statement aggregates each table on its own (or joins one-to-one), so no
join multiplies another table's rows, and every figure it returns is a count or
a sum that adds up over shards.
"""

from __future__ import annotations

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID

PLATFORM_STATS = text("SELECT * FROM get_platform_stats()")

INSTRUCTOR_STATS = text("SELECT * FROM get_instructor_stats(:instructor_id)")

# Whether the instructor's user row exists (asked of the instructor's home shard only).
USER_ROLE = text("SELECT role FROM users WHERE id = :user_id")

REVENUE_BY_MONTH = text("SELECT * FROM get_revenue_by_month(:start, :end)")

# Phase 1 of the top-N: this shard's own top N published courses.
POPULAR_TOP = text("SELECT course_id, enrollment_count FROM get_popular_courses(:limit)")

# Phase 2: every published course whose partial reaches the threshold on this shard
# (served by ix_course_stats_enrollment_count).
POPULAR_ABOVE = text(
    "SELECT s.course_id FROM course_stats s JOIN courses c ON c.id = s.course_id"
    " WHERE s.enrollment_count >= :threshold AND c.status = 'published'"
)

# Phase 3: this shard's exact partials of the candidates, with their catalog columns.
POPULAR_EXACT: TextClause = text(
    "SELECT c.id AS course_id, c.code, c.title, c.instructor_id,"
    " coalesce(s.enrollment_count, 0) AS enrollments,"
    " coalesce(s.rating_sum, 0)::bigint AS rating_sum,"
    " coalesce(s.rating_count, 0) AS rating_count"
    " FROM courses c LEFT JOIN course_stats s ON s.course_id = c.id"
    " WHERE c.id = ANY(:ids)"
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))

# Filler when fewer than N published courses have any enrollment: catalog rows
# (the same on every shard), lowest ids first, which is the order of ties.
POPULAR_FILL: TextClause = text(
    "SELECT c.id AS course_id, c.code, c.title, c.instructor_id FROM courses c"
    " WHERE c.status = 'published' AND c.id <> ALL(:exclude) ORDER BY c.id LIMIT :limit"
).bindparams(bindparam("exclude", type_=ARRAY(UUID(as_uuid=True))))

# Learners live on their region's shard: grouping by the learner's region is
# local, and the counts of a region come from exactly one shard.
ENROLLMENTS_BY_REGION = text(
    "SELECT u.region,"
    " count(*) AS enrollments,"
    " count(*) FILTER (WHERE e.status = 'active') AS active,"
    " count(*) FILTER (WHERE e.status = 'completed') AS completed,"
    " count(*) FILTER (WHERE e.status = 'dropped') AS dropped,"
    " count(DISTINCT e.user_id) AS learners"
    " FROM enrollments e JOIN users u ON u.id = e.user_id"
    " GROUP BY u.region"
)

COURSE_EXISTS = text("SELECT EXISTS (SELECT 1 FROM courses WHERE id = :course_id)")

# Every enrollment of the course on this shard (dropped ones too: they entered
# the funnel). A review belongs to one enrollment (unique), and EXISTS keeps
# even that from multiplying rows.
COURSE_FUNNEL = text(
    "SELECT count(*) AS enrolled,"
    " count(*) FILTER (WHERE e.completed_lessons >= 1) AS started,"
    " count(*) FILTER (WHERE e.progress_percent >= 50) AS halfway,"
    " count(*) FILTER (WHERE e.status = 'completed') AS completed,"
    " count(*) FILTER (WHERE EXISTS ("
    "   SELECT 1 FROM course_reviews r WHERE r.enrollment_id = e.id)) AS reviewed"
    " FROM enrollments e WHERE e.course_id = :course_id"
)
