"""Database logic: triggers (updated_at, course partials, progress, lesson counts, guards).

Trigger functions and triggers live in ``elearn_data/alembic/sql/0003/<name>.sql`` (one
object per file, frozen with this revision); the ``updated_at`` triggers, one
per table with that column, are generated from ``UPDATED_AT_TABLES``. Before
the triggers exist, the derived columns they maintain are recomputed from the
rows already present (a no-op on an empty shard), so the incremental triggers
start from correct values.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:00:01.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_DIR = Path(__file__).resolve().parent.parent / "sql" / "0003"

# Functions, in creation order (SQL_DIR / f"{name}.sql").
FUNCTIONS: tuple[str, ...] = (
    "elearn_touch_updated_at",
    "elearn_course_stats_add",
    "rebuild_course_stats",
    "elearn_course_stats_init",
    "elearn_course_rating_sync",
    "elearn_enrollment_counts_sync",
    "elearn_enrollment_progress_sync",
    "elearn_course_lesson_count_sync",
    "elearn_transaction_status_guard",
)

# (trigger, table), in creation order (SQL_DIR / f"{trigger}.sql").
TRIGGERS: tuple[tuple[str, str], ...] = (
    ("trg_courses_course_stats", "courses"),
    ("trg_course_reviews_rating", "course_reviews"),
    ("trg_enrollments_course_stats", "enrollments"),
    ("trg_lesson_progress_enrollment", "lesson_progress"),
    ("trg_course_lessons_count_insert", "course_lessons"),
    ("trg_course_lessons_count_delete", "course_lessons"),
    ("trg_course_lessons_count_update", "course_lessons"),
    ("trg_transactions_status_guard", "transactions"),
)

# Every table with an updated_at column, with the columns whose change alone
# does not count (derived columns maintained by other triggers).
UPDATED_AT_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("users", ()),
    ("user_profiles", ()),
    ("course_categories", ()),
    ("courses", ("lesson_count", "search_vector")),
    ("course_modules", ()),
    ("course_lessons", ()),
    ("course_seats", ()),
    ("course_stats", ()),
    ("enrollments", ()),
    ("lesson_progress", ()),
    ("course_reviews", ()),
    ("payment_methods", ()),
    ("transactions", ()),
    ("invoices", ()),
)

# Recompute what the triggers maintain incrementally, from the rows present.
BACKFILL: tuple[str, ...] = (
    "SELECT rebuild_course_stats()",
    """
    UPDATE courses c SET lesson_count = n.lessons
    FROM (
        SELECT c2.id, count(l.id)::int AS lessons
        FROM courses c2 LEFT JOIN course_lessons l ON l.course_id = c2.id
        GROUP BY c2.id
    ) n
    WHERE n.id = c.id AND c.lesson_count <> n.lessons
    """,
    """
    UPDATE enrollments e
    SET completed_lessons = n.done,
        progress_percent = CASE
            WHEN c.lesson_count > 0 THEN least(100, round(n.done * 100.0 / c.lesson_count, 2))
            ELSE 0
        END
    FROM (
        SELECT e2.id, count(p.lesson_id) FILTER (WHERE p.completed)::int AS done
        FROM enrollments e2 LEFT JOIN lesson_progress p ON p.enrollment_id = e2.id
        GROUP BY e2.id
    ) n, courses c
    WHERE n.id = e.id AND c.id = e.course_id AND e.status <> 'dropped'
      AND e.completed_lessons <> n.done
    """,
)


def _execute(sql: str) -> None:
    # text(): escape colons so PL/pgSQL's ":=" and "::" never become bind parameters.
    op.execute(sa.text(sql.replace(":", "\\:")))


def _updated_at_trigger(table: str, derived: tuple[str, ...]) -> str:
    args = ", ".join(f"'{column}'" for column in derived)
    return (
        f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION elearn_touch_updated_at({args})"
    )


def upgrade() -> None:
    for name in FUNCTIONS:
        _execute((SQL_DIR / f"{name}.sql").read_text(encoding="utf-8"))
    for statement in BACKFILL:
        _execute(statement)
    for table, derived in UPDATED_AT_TABLES:
        _execute(_updated_at_trigger(table, derived))
    for trigger, _table in TRIGGERS:
        _execute((SQL_DIR / f"{trigger}.sql").read_text(encoding="utf-8"))


def downgrade() -> None:
    for trigger, table in reversed(TRIGGERS):
        _execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for table, _derived in reversed(UPDATED_AT_TABLES):
        _execute(f"DROP TRIGGER IF EXISTS trg_{table}_updated_at ON {table}")
    for name in reversed(FUNCTIONS):
        _execute(f"DROP FUNCTION IF EXISTS {name}")
