"""Gamification: point values, badges, the points ledger, summaries, awards and their triggers.

Tables: ``point_rules`` (what each event pays; the defaults are inserted here)
and ``badges`` are reference (catalog) tables, written to every shard in the
catalog's two-phase commit; ``points_ledger`` (append-only for the application
role, see alembic/env.py), ``learner_points`` (one summary row per learner) and
``badge_awards`` are learner-owned, on the learner's home shard. The PL/pgSQL
logic lives in ``alembic/sql/0009/<name>.sql`` (one object per file): the
triggers pay each event once, in the event's transaction, keep the summary
(points, counters, streaks) and award badges; ``create_badge`` backfills a new
badge set-based; ``set_event_points`` changes what an event pays.

Levels are not stored: a level is a function of the points and
``Settings.gamification.level_thresholds`` (computed where it is read), so the
points stay the one stored fact and a changed threshold needs no rewrite.

No backfill of the ledger on upgrade: points count from the upgrade on (the
seeder fills the ledger of the activity it seeds).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_DIR = Path(__file__).resolve().parent.parent / "sql" / "0009"

# Functions, in creation order (SQL_DIR / f"{name}.sql").
FUNCTIONS: tuple[str, ...] = (
    "elearn_award_points",
    "elearn_record_active_day",
    "elearn_badge_metric",
    "elearn_award_badges",
    "create_badge",
    "set_event_points",
    "get_points_leaders",
    "elearn_points_lesson",
    "elearn_points_course",
    "elearn_points_attempt",
    "elearn_points_review",
)

# (trigger, table), in creation order (SQL_DIR / f"{trigger}.sql").
TRIGGERS: tuple[tuple[str, str], ...] = (
    ("trg_lesson_progress_points", "lesson_progress"),
    ("trg_enrollments_points", "enrollments"),
    ("trg_assessment_attempts_points", "assessment_attempts"),
    ("trg_course_reviews_points", "course_reviews"),
    ("trg_learner_points_badges", "learner_points"),
)
# updated_at triggers (revision 0003's elearn_touch_updated_at).
UPDATED_AT_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("point_rules", ()),
    ("learner_points", ()),
)
# Kept in step with elearn_data.models.gamification (the migration never imports models).
DEFAULT_POINTS = {
    "lesson_completed": 10,
    "course_completed": 100,
    "assessment_passed": 25,
    "review_written": 5,
    "streak_day": 5,
}
# When the default point values took effect: the same on every shard.
DEFAULT_POINTS_AT = datetime(2026, 12, 2, tzinfo=UTC)


def _execute(sql: str) -> None:
    # text(): escape colons so PL/pgSQL's ":=" and "::" never become bind parameters.
    op.execute(sa.text(sql.replace(":", "\\:")))


def _now() -> sa.TextClause:
    return sa.text("now()")


def _tables() -> None:
    rules = op.create_table(
        "point_rules",
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint(
            "event IN ('lesson_completed', 'course_completed', 'assessment_passed',"
            " 'review_written', 'streak_day')",
            name=op.f("ck_point_rules_event"),
        ),
        sa.CheckConstraint("points >= 0", name=op.f("ck_point_rules_points_not_negative")),
        sa.PrimaryKeyConstraint("event", name=op.f("pk_point_rules")),
    )
    # Catalog rows are identical on every shard, to the timestamp (the restore
    # drill's invariant check compares whole rows): one fixed time, not now().
    op.bulk_insert(
        rules,
        [
            {"event": e, "points": p, "updated_at": DEFAULT_POINTS_AT}
            for e, p in DEFAULT_POINTS.items()
        ],
    )

    op.create_table(
        "badges",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("criterion", sa.String(length=32), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint(
            "criterion IN ('lessons_completed', 'courses_completed', 'assessments_passed',"
            " 'reviews_written', 'streak_days', 'points')",
            name=op.f("ck_badges_criterion"),
        ),
        sa.CheckConstraint("threshold >= 0", name=op.f("ck_badges_threshold_not_negative")),
        sa.CheckConstraint("length(btrim(name)) > 0", name=op.f("ck_badges_name_not_blank")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_badges")),
        sa.UniqueConstraint("code", name=op.f("uq_badges_code")),
    )

    op.create_table(
        "points_ledger",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("awarded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("points >= 0", name=op.f("ck_points_ledger_points_not_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_points_ledger_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event"],
            ["point_rules.event"],
            name=op.f("fk_points_ledger_event_point_rules"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("user_id", "event", "source_id", name=op.f("pk_points_ledger")),
    )
    op.create_index(
        "ix_points_ledger_user_id_awarded_at",
        "points_ledger",
        ["user_id", sa.text("awarded_at DESC")],
    )
    op.create_index("ix_points_ledger_awarded_at", "points_ledger", ["awarded_at"])
    op.create_index("ix_points_ledger_course_id", "points_ledger", ["course_id", "user_id"])

    op.create_table(
        "learner_points",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("lessons_completed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("courses_completed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("assessments_passed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reviews_written", sa.Integer(), server_default="0", nullable=False),
        sa.Column("streak_days", sa.Integer(), server_default="0", nullable=False),
        sa.Column("longest_streak", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_active_day", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint(
            "points >= 0 AND lessons_completed >= 0 AND courses_completed >= 0"
            " AND assessments_passed >= 0 AND reviews_written >= 0",
            name=op.f("ck_learner_points_counts_not_negative"),
        ),
        sa.CheckConstraint(
            "streak_days >= 0 AND longest_streak >= streak_days",
            name=op.f("ck_learner_points_streaks"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_learner_points_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_learner_points")),
    )
    op.create_index(
        "ix_learner_points_points", "learner_points", [sa.text("points DESC"), "user_id"]
    )

    op.create_table(
        "badge_awards",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("badge_id", sa.UUID(), nullable=False),
        sa.Column("awarded_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_badge_awards_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["badge_id"],
            ["badges.id"],
            name=op.f("fk_badge_awards_badge_id_badges"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "badge_id", name=op.f("pk_badge_awards")),
    )
    op.create_index("ix_badge_awards_badge_id", "badge_awards", ["badge_id"])


def upgrade() -> None:
    _tables()
    for name in FUNCTIONS:
        _execute((SQL_DIR / f"{name}.sql").read_text(encoding="utf-8"))
    for table, _derived in UPDATED_AT_TABLES:
        _execute(
            f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION elearn_touch_updated_at()"
        )
    for trigger, _table in TRIGGERS:
        _execute((SQL_DIR / f"{trigger}.sql").read_text(encoding="utf-8"))


def downgrade() -> None:
    for trigger, table in reversed(TRIGGERS):
        _execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for table, _derived in reversed(UPDATED_AT_TABLES):
        _execute(f"DROP TRIGGER IF EXISTS trg_{table}_updated_at ON {table}")
    for name in reversed(FUNCTIONS):
        _execute(f"DROP FUNCTION IF EXISTS {name}")
    for table in ("badge_awards", "learner_points", "points_ledger", "badges", "point_rules"):
        op.drop_table(table)
