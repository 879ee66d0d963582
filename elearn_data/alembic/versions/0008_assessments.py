"""Assessments: definitions (catalog), attempts and answers (learner's), grading, completion.

Tables: ``assessments`` and ``assessment_questions`` are reference (catalog)
tables, written to every shard in the catalog's two-phase commit;
``assessment_attempts`` and ``attempt_answers`` are learner-owned, on the
learner's home shard. The PL/pgSQL logic lives in ``alembic/sql/0008/<name>.sql``
(one object per file): start an attempt, answer, submit (automatic grading of
objective questions), grade by hand, the gradebook's shard part, and the
triggers that keep each enrollment's completion right (every lesson done and
every published required assessment passed).

``elearn_enrollment_progress_sync`` (revision 0003) is replaced with
``CREATE OR REPLACE`` by a body that also asks for the assessments; downgrade
restores 0003's body from ``alembic/sql/0003`` (and completes the enrollments
that waited only for their assessments, as the restored rule says). No backfill
is needed on upgrade: the tables start empty, so no completion changes.

Revision ID: 0008
Revises: 0003
Create Date: 2026-12-01 22:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_ROOT = Path(__file__).resolve().parent.parent / "sql"
SQL_DIR = SQL_ROOT / "0008"

# Functions, in creation order (SQL_DIR / f"{name}.sql").
FUNCTIONS: tuple[str, ...] = (
    "elearn_normalize_answer",
    "elearn_answer_correct",
    "elearn_assessments_passed",
    "elearn_sync_completion",
    "elearn_score_attempt",
    "create_assessment",
    "add_assessment_question",
    "publish_assessment",
    "start_assessment_attempt",
    "answer_assessment_question",
    "submit_assessment_attempt",
    "grade_assessment_answer",
    "get_course_gradebook",
    "elearn_attempt_completion_sync",
    "elearn_assessment_completion_sync",
)

# Replaced in place (CREATE OR REPLACE); downgrade restores the named revision's body.
REPLACED: tuple[tuple[str, str], ...] = (("elearn_enrollment_progress_sync", "0003"),)

# (trigger, table), in creation order (SQL_DIR / f"{trigger}.sql").
TRIGGERS: tuple[tuple[str, str], ...] = (
    ("trg_assessment_attempts_completion", "assessment_attempts"),
    ("trg_assessments_completion_insert", "assessments"),
    ("trg_assessments_completion_update", "assessments"),
    ("trg_assessments_completion_delete", "assessments"),
)

# updated_at triggers (revision 0003's elearn_touch_updated_at), with derived columns.
UPDATED_AT_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("assessments", ("question_count", "total_points")),
    ("assessment_questions", ()),
    ("assessment_attempts", ()),
    ("attempt_answers", ()),
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


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    ]


def _tables() -> None:
    op.create_table(
        "assessments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("course_id", sa.UUID(), nullable=False),
        sa.Column("lesson_id", sa.UUID(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), server_default="quiz", nullable=False),
        sa.Column(
            "passing_percent", sa.Numeric(precision=5, scale=2), server_default="60", nullable=False
        ),
        sa.Column("max_attempts", sa.Integer(), nullable=True),
        sa.Column("time_limit_minutes", sa.Integer(), nullable=True),
        sa.Column("required", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("status", sa.String(length=20), server_default="draft", nullable=False),
        sa.Column("question_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "total_points", sa.Numeric(precision=9, scale=2), server_default="0", nullable=False
        ),
        sa.Column("source_content_id", sa.String(length=128), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "kind IN ('quiz', 'assignment', 'exam')", name=op.f("ck_assessments_kind")
        ),
        sa.CheckConstraint("status IN ('draft', 'published')", name=op.f("ck_assessments_status")),
        sa.CheckConstraint("length(btrim(title)) > 0", name=op.f("ck_assessments_title_not_blank")),
        sa.CheckConstraint(
            "passing_percent BETWEEN 0 AND 100", name=op.f("ck_assessments_passing_percent")
        ),
        sa.CheckConstraint(
            "max_attempts IS NULL OR max_attempts > 0", name=op.f("ck_assessments_max_attempts")
        ),
        sa.CheckConstraint(
            "time_limit_minutes IS NULL OR time_limit_minutes > 0",
            name=op.f("ck_assessments_time_limit"),
        ),
        sa.CheckConstraint(
            "question_count >= 0 AND total_points >= 0", name=op.f("ck_assessments_totals")
        ),
        sa.CheckConstraint(
            "status <> 'published' OR published_at IS NOT NULL",
            name=op.f("ck_assessments_published_at"),
        ),
        sa.CheckConstraint(
            "status <> 'published' OR question_count > 0",
            name=op.f("ck_assessments_published_questions"),
        ),
        sa.ForeignKeyConstraint(
            ["course_id"],
            ["courses.id"],
            name=op.f("fk_assessments_course_id_courses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lesson_id"],
            ["course_lessons.id"],
            name=op.f("fk_assessments_lesson_id_course_lessons"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessments")),
    )
    op.create_index("ix_assessments_course_id", "assessments", ["course_id", "status"])
    op.create_index(
        "ix_assessments_lesson_id",
        "assessments",
        ["lesson_id"],
        postgresql_where=sa.text("lesson_id IS NOT NULL"),
    )
    op.create_index(
        "uq_assessments_source_content_id",
        "assessments",
        ["source_content_id"],
        unique=True,
        postgresql_where=sa.text("source_content_id IS NOT NULL"),
    )

    op.create_table(
        "assessment_questions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("assessment_id", sa.UUID(), nullable=False),
        sa.Column("question_order", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("points", sa.Numeric(precision=7, scale=2), server_default="1", nullable=False),
        sa.Column(
            "options",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "correct",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        *_timestamps(),
        sa.CheckConstraint(
            "kind IN ('single_choice', 'multiple_choice', 'true_false', 'short_answer', 'essay')",
            name=op.f("ck_assessment_questions_kind"),
        ),
        sa.CheckConstraint(
            "question_order > 0", name=op.f("ck_assessment_questions_order_positive")
        ),
        sa.CheckConstraint("points > 0", name=op.f("ck_assessment_questions_points_positive")),
        sa.CheckConstraint(
            "length(btrim(prompt)) > 0", name=op.f("ck_assessment_questions_prompt_not_blank")
        ),
        sa.CheckConstraint(
            "jsonb_typeof(options) = 'array'", name=op.f("ck_assessment_questions_options_array")
        ),
        sa.CheckConstraint(
            "jsonb_typeof(correct) = 'array'", name=op.f("ck_assessment_questions_correct_array")
        ),
        sa.CheckConstraint(
            "kind NOT IN ('single_choice', 'multiple_choice') OR jsonb_array_length(options) >= 2",
            name=op.f("ck_assessment_questions_choice_options"),
        ),
        sa.CheckConstraint(
            "kind IN ('single_choice', 'multiple_choice') OR options = '[]'::jsonb",
            name=op.f("ck_assessment_questions_options_only_for_choices"),
        ),
        sa.CheckConstraint(
            "(kind = 'essay') = (correct = '[]'::jsonb)",
            name=op.f("ck_assessment_questions_correct_unless_essay"),
        ),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_assessment_questions_assessment_id_assessments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_questions")),
        sa.UniqueConstraint(
            "assessment_id",
            "question_order",
            name=op.f("uq_assessment_questions_assessment_id_question_order"),
        ),
    )

    op.create_table(
        "assessment_attempts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("enrollment_id", sa.UUID(), nullable=False),
        sa.Column("assessment_id", sa.UUID(), nullable=False),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="in_progress", nullable=False),
        sa.Column("score", sa.Numeric(precision=9, scale=2), nullable=True),
        sa.Column("max_score", sa.Numeric(precision=9, scale=2), nullable=True),
        sa.Column("percent", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("graded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('in_progress', 'submitted', 'graded')",
            name=op.f("ck_assessment_attempts_status"),
        ),
        sa.CheckConstraint(
            "attempt_number > 0", name=op.f("ck_assessment_attempts_number_positive")
        ),
        sa.CheckConstraint(
            "(status = 'in_progress') = (submitted_at IS NULL)",
            name=op.f("ck_assessment_attempts_submitted_at"),
        ),
        sa.CheckConstraint(
            "(status = 'graded') = (graded_at IS NOT NULL)",
            name=op.f("ck_assessment_attempts_graded_at"),
        ),
        sa.CheckConstraint(
            "(status = 'graded') = (passed IS NOT NULL)",
            name=op.f("ck_assessment_attempts_passed_when_graded"),
        ),
        sa.CheckConstraint(
            "status = 'in_progress' OR (score IS NOT NULL AND max_score IS NOT NULL"
            " AND percent IS NOT NULL)",
            name=op.f("ck_assessment_attempts_scored_when_submitted"),
        ),
        sa.CheckConstraint(
            "score IS NULL OR (score >= 0 AND score <= max_score)",
            name=op.f("ck_assessment_attempts_score_range"),
        ),
        sa.CheckConstraint(
            "percent IS NULL OR percent BETWEEN 0 AND 100",
            name=op.f("ck_assessment_attempts_percent_range"),
        ),
        sa.CheckConstraint(
            "deadline_at IS NULL OR deadline_at > started_at",
            name=op.f("ck_assessment_attempts_deadline"),
        ),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
            name=op.f("fk_assessment_attempts_assessment_id_assessments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_assessment_attempts_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessment_attempts")),
        sa.UniqueConstraint(
            "enrollment_id",
            "assessment_id",
            "attempt_number",
            name=op.f("uq_assessment_attempts_enrollment_id_assessment_id_attempt_number"),
        ),
    )
    op.create_index(
        "uq_assessment_attempts_open",
        "assessment_attempts",
        ["enrollment_id", "assessment_id"],
        unique=True,
        postgresql_where=sa.text("status = 'in_progress'"),
    )
    op.create_index(
        "ix_assessment_attempts_passed",
        "assessment_attempts",
        ["enrollment_id", "assessment_id"],
        postgresql_where=sa.text("passed"),
    )
    op.create_index(
        "ix_assessment_attempts_enrollment_started",
        "assessment_attempts",
        ["enrollment_id", sa.text("started_at DESC")],
    )
    op.create_index(
        "ix_assessment_attempts_assessment_id", "assessment_attempts", ["assessment_id"]
    )

    op.create_table(
        "attempt_answers",
        sa.Column("attempt_id", sa.UUID(), nullable=False),
        sa.Column("question_id", sa.UUID(), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("points_awarded", sa.Numeric(precision=7, scale=2), nullable=True),
        sa.Column("graded_by", sa.UUID(), nullable=True),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.Column(
            "answered_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("graded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "points_awarded IS NULL OR points_awarded >= 0", name=op.f("ck_attempt_answers_points")
        ),
        sa.CheckConstraint(
            "(graded_by IS NULL) OR (points_awarded IS NOT NULL)",
            name=op.f("ck_attempt_answers_graded_has_points"),
        ),
        sa.CheckConstraint(
            "feedback IS NULL OR length(feedback) <= 5000",
            name=op.f("ck_attempt_answers_feedback_length"),
        ),
        sa.ForeignKeyConstraint(
            ["attempt_id"],
            ["assessment_attempts.id"],
            name=op.f("fk_attempt_answers_attempt_id_assessment_attempts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["assessment_questions.id"],
            name=op.f("fk_attempt_answers_question_id_assessment_questions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("attempt_id", "question_id", name=op.f("pk_attempt_answers")),
    )
    op.create_index("ix_attempt_answers_question_id", "attempt_answers", ["question_id"])


def upgrade() -> None:
    _tables()
    for name in FUNCTIONS:
        _execute((SQL_DIR / f"{name}.sql").read_text(encoding="utf-8"))
    for name, _previous in REPLACED:
        _execute((SQL_DIR / f"{name}.sql").read_text(encoding="utf-8"))
    for table, derived in UPDATED_AT_TABLES:
        _execute(_updated_at_trigger(table, derived))
    for trigger, _table in TRIGGERS:
        _execute((SQL_DIR / f"{trigger}.sql").read_text(encoding="utf-8"))


def downgrade() -> None:
    for trigger, table in reversed(TRIGGERS):
        _execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    for table, _derived in reversed(UPDATED_AT_TABLES):
        _execute(f"DROP TRIGGER IF EXISTS trg_{table}_updated_at ON {table}")
    for name, previous in REPLACED:
        _execute((SQL_ROOT / previous / f"{name}.sql").read_text(encoding="utf-8"))
    for name in reversed(FUNCTIONS):
        _execute(f"DROP FUNCTION IF EXISTS {name}")
    for table in ("attempt_answers", "assessment_attempts", "assessment_questions", "assessments"):
        op.drop_table(table)
    # A completed enrollment that waited only for its assessments completes again
    # under the lessons-only rule of the restored trigger.
    _execute(
        "UPDATE enrollments e SET status = 'completed', completed_at = now()"
        " FROM courses c WHERE c.id = e.course_id AND e.status = 'active'"
        " AND c.lesson_count > 0 AND e.completed_lessons >= c.lesson_count"
    )
