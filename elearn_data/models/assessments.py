"""Assessments: definitions (catalog, on every shard) and attempts (the learner's shard).

An assessment (quiz, assignment or exam) and its questions are reference rows,
written to every shard primary in the catalog's two-phase commit, like the
course they belong to: a learner on any shard starts, answers and submits an
attempt with writes to one shard only, and the foreign keys from attempts and
answers to assessments and questions stay real and local.

Attempts and their answers are learner-owned: an attempt's id carries the
enrollment's region (its shard key), an answer is placed by its attempt.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from elearn_data.models.base import (
    Base,
    Placement,
    created_at,
    one_of,
    placed,
    updated_at,
    uuid_pk,
)

ASSESSMENT_KINDS = ("quiz", "assignment", "exam")
ASSESSMENT_STATUSES = ("draft", "published")
QUESTION_KINDS = ("single_choice", "multiple_choice", "true_false", "short_answer", "essay")
ATTEMPT_STATUSES = ("in_progress", "submitted", "graded")


class Assessment(Base):
    """A graded activity of a course; the same row on every shard."""

    __tablename__ = "assessments"
    __table_args__ = (
        CheckConstraint(one_of("kind", ASSESSMENT_KINDS), name="kind"),
        CheckConstraint(one_of("status", ASSESSMENT_STATUSES), name="status"),
        CheckConstraint("length(btrim(title)) > 0", name="title_not_blank"),
        CheckConstraint("passing_percent BETWEEN 0 AND 100", name="passing_percent"),
        CheckConstraint("max_attempts IS NULL OR max_attempts > 0", name="max_attempts"),
        CheckConstraint("time_limit_minutes IS NULL OR time_limit_minutes > 0", name="time_limit"),
        CheckConstraint("question_count >= 0 AND total_points >= 0", name="totals"),
        CheckConstraint("status <> 'published' OR published_at IS NOT NULL", name="published_at"),
        CheckConstraint("status <> 'published' OR question_count > 0", name="published_questions"),
        # for_course(), and the completion rule's "published required assessments".
        Index("ix_assessments_course_id", "course_id", "status"),
        Index(
            "ix_assessments_lesson_id", "lesson_id", postgresql_where=text("lesson_id IS NOT NULL")
        ),
        # One assessment per MongoDB quiz document (from_quiz_content is idempotent).
        Index(
            "uq_assessments_source_content_id",
            "source_content_id",
            unique=True,
            postgresql_where=text("source_content_id IS NOT NULL"),
        ),
        placed(Placement.REFERENCE),
    )

    id: Mapped[uuid_pk]
    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    lesson_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("course_lessons.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), server_default="quiz")
    passing_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="60")
    max_attempts: Mapped[int | None]
    time_limit_minutes: Mapped[int | None]
    required: Mapped[bool] = mapped_column(Boolean, server_default="true")
    status: Mapped[str] = mapped_column(String(20), server_default="draft")
    # Maintained by add_assessment_question (questions are frozen once published).
    question_count: Mapped[int] = mapped_column(Integer, server_default="0")
    total_points: Mapped[Decimal] = mapped_column(Numeric(9, 2), server_default="0")
    source_content_id: Mapped[str | None] = mapped_column(String(128))
    published_at: Mapped[datetime | None]
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class AssessmentQuestion(Base):
    """One question of an assessment, with its answer key (never shown to learners)."""

    __tablename__ = "assessment_questions"
    __table_args__ = (
        CheckConstraint(one_of("kind", QUESTION_KINDS), name="kind"),
        CheckConstraint("question_order > 0", name="order_positive"),
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("length(btrim(prompt)) > 0", name="prompt_not_blank"),
        CheckConstraint("jsonb_typeof(options) = 'array'", name="options_array"),
        CheckConstraint("jsonb_typeof(correct) = 'array'", name="correct_array"),
        CheckConstraint(
            "kind NOT IN ('single_choice', 'multiple_choice') OR jsonb_array_length(options) >= 2",
            name="choice_options",
        ),
        CheckConstraint(
            "kind IN ('single_choice', 'multiple_choice') OR options = '[]'::jsonb",
            name="options_only_for_choices",
        ),
        CheckConstraint("(kind = 'essay') = (correct = '[]'::jsonb)", name="correct_unless_essay"),
        UniqueConstraint("assessment_id", "question_order"),
        placed(Placement.REFERENCE),
    )

    id: Mapped[uuid_pk]
    assessment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assessments.id", ondelete="CASCADE")
    )
    question_order: Mapped[int]
    kind: Mapped[str] = mapped_column(String(20))
    prompt: Mapped[str] = mapped_column(Text)
    points: Mapped[Decimal] = mapped_column(Numeric(7, 2), server_default="1")
    # Option texts of choice questions; [] for the others.
    options: Mapped[Any] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    # The answer key: option indexes (choices), [true|false], accepted texts; [] for essays.
    correct: Mapped[Any] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class AssessmentAttempt(Base):
    """One try of a learner (an enrollment) at an assessment; lives on the learner's shard."""

    __tablename__ = "assessment_attempts"
    __table_args__ = (
        CheckConstraint(one_of("status", ATTEMPT_STATUSES), name="status"),
        CheckConstraint("attempt_number > 0", name="number_positive"),
        CheckConstraint("(status = 'in_progress') = (submitted_at IS NULL)", name="submitted_at"),
        CheckConstraint("(status = 'graded') = (graded_at IS NOT NULL)", name="graded_at"),
        CheckConstraint("(status = 'graded') = (passed IS NOT NULL)", name="passed_when_graded"),
        CheckConstraint(
            "status = 'in_progress' OR (score IS NOT NULL AND max_score IS NOT NULL"
            " AND percent IS NOT NULL)",
            name="scored_when_submitted",
        ),
        CheckConstraint("score IS NULL OR (score >= 0 AND score <= max_score)", name="score_range"),
        CheckConstraint("percent IS NULL OR percent BETWEEN 0 AND 100", name="percent_range"),
        CheckConstraint("deadline_at IS NULL OR deadline_at > started_at", name="deadline"),
        UniqueConstraint("enrollment_id", "assessment_id", "attempt_number"),
        # At most one open attempt per enrollment and assessment, whatever races.
        Index(
            "uq_assessment_attempts_open",
            "enrollment_id",
            "assessment_id",
            unique=True,
            postgresql_where=text("status = 'in_progress'"),
        ),
        # The completion rule: has this enrollment passed this assessment?
        Index(
            "ix_assessment_attempts_passed",
            "enrollment_id",
            "assessment_id",
            postgresql_where=text("passed"),
        ),
        # attempts(enrollment_id) newest first.
        Index(
            "ix_assessment_attempts_enrollment_started", "enrollment_id", text("started_at DESC")
        ),
        # Foreign-key lookups when an assessment goes (cascade), and per-assessment reads.
        Index("ix_assessment_attempts_assessment_id", "assessment_id"),
        placed(Placement.LEARNER, "id"),
    )

    id: Mapped[uuid_pk]
    enrollment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE")
    )
    assessment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assessments.id", ondelete="CASCADE")
    )
    attempt_number: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), server_default="in_progress")
    score: Mapped[Decimal | None] = mapped_column(Numeric(9, 2))
    max_score: Mapped[Decimal | None] = mapped_column(Numeric(9, 2))
    percent: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    passed: Mapped[bool | None]
    started_at: Mapped[created_at]
    deadline_at: Mapped[datetime | None]
    submitted_at: Mapped[datetime | None]
    graded_at: Mapped[datetime | None]
    updated_at: Mapped[updated_at]


class AttemptAnswer(Base):
    """A learner's answer to one question of an attempt, and the points it earned."""

    __tablename__ = "attempt_answers"
    __table_args__ = (
        CheckConstraint("points_awarded IS NULL OR points_awarded >= 0", name="points"),
        CheckConstraint(
            "(graded_by IS NULL) OR (points_awarded IS NOT NULL)", name="graded_has_points"
        ),
        CheckConstraint("feedback IS NULL OR length(feedback) <= 5000", name="feedback_length"),
        Index("ix_attempt_answers_question_id", "question_id"),
        placed(Placement.LEARNER, "attempt_id"),
    )

    attempt_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assessment_attempts.id", ondelete="CASCADE"), primary_key=True
    )
    question_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assessment_questions.id", ondelete="CASCADE"), primary_key=True
    )
    # NULL: not answered (recorded at submit with 0 points).
    response: Mapped[Any | None] = mapped_column(JSONB)
    # NULL until graded (essays wait for their grader).
    points_awarded: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    graded_by: Mapped[uuid.UUID | None]
    feedback: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[created_at]
    graded_at: Mapped[datetime | None]
    updated_at: Mapped[updated_at]
