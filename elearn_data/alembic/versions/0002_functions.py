"""Database logic: the PL/pgSQL functions of every shard (and the invoice number sequence).

Each object's SQL lives in ``elearn_data/alembic/sql/0002/<name>.sql`` (one object per file,
frozen with this revision: a later change is a new revision with its own
folder). Upgrade creates them in the order below; downgrade drops them in the
reverse order. ``elearn_data/alembic/env.py`` grants EXECUTE and sequence USAGE to the
application role after every run.

Functions raise our SQLSTATEs (EL400 invalid input, EL404 not found, EL409
invalid state, EL410 course full, EL411 already enrolled, EL412 duplicate),
which ``elearn_data.dberrors`` maps to the domain errors. See docs/schema.md,
"Functions and triggers".

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_DIR = Path(__file__).resolve().parent.parent / "sql" / "0002"

# (kind, name) in creation order; the SQL of each is SQL_DIR / f"{name}.sql".
OBJECTS: tuple[tuple[str, str], ...] = (
    ("sequence", "invoice_number_seq"),
    # helpers
    ("function", "elearn_region_code"),
    ("function", "elearn_id_code"),
    ("function", "elearn_build_id"),
    ("function", "elearn_new_id"),
    ("function", "elearn_new_reference_id"),
    ("function", "elearn_shard"),
    # users
    ("function", "create_user_with_profile"),
    ("function", "get_user_by_email"),
    ("function", "update_user_login"),
    ("function", "deactivate_user"),
    # catalog
    ("function", "create_course"),
    ("function", "get_course_details"),
    ("function", "get_popular_courses"),
    ("function", "search_courses"),
    ("function", "publish_course"),
    ("function", "archive_course"),
    ("function", "get_course_curriculum"),
    # learning
    ("function", "enroll_user"),
    ("function", "get_user_enrollments"),
    ("function", "mark_lesson_complete"),
    ("function", "reset_lesson_progress"),
    ("function", "get_course_progress"),
    ("function", "drop_enrollment"),
    ("function", "upsert_course_review"),
    ("function", "delete_course_review"),
    ("function", "issue_certificate"),
    # seats
    ("function", "reserve_seat"),
    ("function", "release_seat"),
    ("function", "set_course_capacity"),
    # payments
    ("function", "create_transaction"),
    ("function", "complete_transaction"),
    ("function", "fail_transaction"),
    ("function", "refund_transaction"),
    ("function", "get_user_transactions"),
    # analytics
    ("function", "get_instructor_stats"),
    ("function", "get_platform_stats"),
    ("function", "get_revenue_by_month"),
)


def _execute(sql: str) -> None:
    # op.execute() runs a text() construct, in which ":name" is a bind parameter;
    # PL/pgSQL is full of colons (":=", "::uuid", "[:space:]"), so every colon is
    # escaped. Percent signs are doubled by the compiler for psycopg2 and undone
    # by the driver, so format('%s') reaches the server intact.
    op.execute(sa.text(sql.replace(":", "\\:")))


def upgrade() -> None:
    for _kind, name in OBJECTS:
        _execute((SQL_DIR / f"{name}.sql").read_text(encoding="utf-8"))


def downgrade() -> None:
    for kind, name in reversed(OBJECTS):
        # No overloads exist, so the bare name identifies the function.
        _execute(f"DROP {kind.upper()} IF EXISTS {name}")
