"""The per-shard statements of the analytics layer: each returns aggregates, never raw rows.

Where the database already offers a shard-local function (``get_platform_stats``,
``get_instructor_stats``, ``get_revenue_by_month``, revision 0002), the
analytics layer calls it; the other statements live here, except the rounds of
the popular-courses top N, which ``db.catalog.popular`` runs too and which live
with the catalog's statements (``repositories/catalog.py``, ``PopularRounds``).
Every statement aggregates each table on its own (or joins one-to-one), so no
join multiplies another table's rows, and every figure it returns is a count or
a sum that adds up over shards.
"""

from __future__ import annotations

from sqlalchemy import TextClause, column, text

from elearn_data.sharding.unit_of_work import PreparedRead


def _asked_of_each_shard(
    name: str, statement: TextClause, columns: tuple[str, ...], params: tuple[str, ...] = ()
) -> PreparedRead:
    """The one statement a one-statement analytic asks every shard (``FanOut.each``).

    Prepared once per pooled connection and sent with the call's statement
    timeout. The columns are untyped: their values are the driver's, as for a
    plain ``text()`` (Decimal for numeric, date, int).
    """
    typed = statement.columns(*(column(name) for name in columns))
    return PreparedRead(f"elearn_analytics_{name}", typed, params, timed=True)


PLATFORM_STATS = _asked_of_each_shard(
    "platform_stats",
    text("SELECT * FROM get_platform_stats()"),
    (
        "users",
        "students",
        "instructors",
        "courses",
        "published_courses",
        "enrollments",
        "active_enrollments",
        "completed_enrollments",
        "revenue",
    ),
)

INSTRUCTOR_STATS = text("SELECT * FROM get_instructor_stats(:instructor_id)")

# Whether the instructor's user row exists (asked of the instructor's home shard only).
USER_ROLE = text("SELECT role FROM users WHERE id = :user_id")

REVENUE_BY_MONTH = _asked_of_each_shard(
    "revenue_by_month",
    text("SELECT * FROM get_revenue_by_month(:start, :end)"),
    ("month", "currency", "purchases", "refunds", "revenue", "transactions"),
    ("start", "end"),
)

# Learners live on their region's shard: grouping by the learner's region is
# local, and the counts of a region come from exactly one shard.
ENROLLMENTS_BY_REGION = _asked_of_each_shard(
    "enrollments_by_region",
    text(
        "SELECT u.region,"
        " count(*) AS enrollments,"
        " count(*) FILTER (WHERE e.status = 'active') AS active,"
        " count(*) FILTER (WHERE e.status = 'completed') AS completed,"
        " count(*) FILTER (WHERE e.status = 'dropped') AS dropped,"
        " count(DISTINCT e.user_id) AS learners"
        " FROM enrollments e JOIN users u ON u.id = e.user_id"
        " GROUP BY u.region"
    ),
    ("region", "enrollments", "active", "completed", "dropped", "learners"),
)

# Learners with points and their points per learner region (gamification, revision 0009).
POINTS_BY_REGION = _asked_of_each_shard(
    "points_by_region",
    text(
        "SELECT u.region, count(*) AS learners, coalesce(sum(s.points), 0) AS points"
        " FROM learner_points s JOIN users u ON u.id = s.user_id"
        " GROUP BY u.region"
    ),
    ("region", "learners", "points"),
)

# Every badge of the catalog with this shard's number of awards.
BADGE_COUNTS = _asked_of_each_shard(
    "badge_counts",
    text(
        "SELECT b.id AS badge_id, b.code, b.name, b.criterion, b.threshold,"
        " count(a.user_id) AS awarded"
        " FROM badges b LEFT JOIN badge_awards a ON a.badge_id = b.id"
        " GROUP BY b.id"
    ),
    ("badge_id", "code", "name", "criterion", "threshold", "awarded"),
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
