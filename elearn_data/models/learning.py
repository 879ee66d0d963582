"""Enrollments, lesson progress, reviews (learner-owned) and per-shard course statistics."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from elearn_data.models.base import (
    ENROLLMENT_STATUSES,
    Base,
    Placement,
    created_at,
    one_of,
    placed,
    updated_at,
    uuid_pk,
)


class Enrollment(Base):
    """A learner's place in a course; lives on the learner's shard."""

    __tablename__ = "enrollments"
    __table_args__ = (
        CheckConstraint(one_of("status", ENROLLMENT_STATUSES), name="status"),
        CheckConstraint("progress_percent BETWEEN 0 AND 100", name="progress_percent"),
        CheckConstraint("completed_lessons >= 0", name="completed_lessons"),
        CheckConstraint("status <> 'completed' OR completed_at IS NOT NULL", name="completed_at"),
        CheckConstraint("status <> 'dropped' OR dropped_at IS NOT NULL", name="dropped_at"),
        CheckConstraint(
            "certificate_url IS NULL OR status = 'completed'", name="certificate_needs_completion"
        ),
        # One live enrollment per learner and course; a dropped one may be followed
        # by a new one.
        Index(
            "uq_enrollments_user_id_course_id_live",
            "user_id",
            "course_id",
            unique=True,
            postgresql_where=text("status <> 'dropped'"),
        ),
        # Target of course_reviews' composite key (review row agrees with its enrollment).
        UniqueConstraint("id", "user_id", "course_id"),
        Index("ix_enrollments_user_id_enrolled_at", "user_id", text("enrolled_at DESC")),
        Index("ix_enrollments_course_id_status", "course_id", "status"),
        Index("ix_enrollments_enrolled_at", "enrolled_at"),
        placed(Placement.LEARNER, "id"),
    )

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(20), server_default="active")
    progress_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), server_default="0")
    completed_lessons: Mapped[int] = mapped_column(Integer, server_default="0")
    enrolled_at: Mapped[created_at]
    completed_at: Mapped[datetime | None]
    dropped_at: Mapped[datetime | None]
    certificate_url: Mapped[str | None] = mapped_column(String(500))
    certificate_issued_at: Mapped[datetime | None]
    updated_at: Mapped[updated_at]


class LessonProgress(Base):
    """A learner's progress on one lesson; created on first activity, not on enrollment."""

    __tablename__ = "lesson_progress"
    __table_args__ = (
        CheckConstraint("time_spent_minutes >= 0", name="time_spent"),
        CheckConstraint("completed = (completed_at IS NOT NULL)", name="completed_at"),
        Index("ix_lesson_progress_lesson_id", "lesson_id"),
        placed(Placement.LEARNER, "enrollment_id"),
    )

    enrollment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), primary_key=True
    )
    lesson_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("course_lessons.id", ondelete="CASCADE"), primary_key=True
    )
    completed: Mapped[bool] = mapped_column(Boolean, server_default="false")
    completed_at: Mapped[datetime | None]
    time_spent_minutes: Mapped[int] = mapped_column(Integer, server_default="0")
    last_accessed_at: Mapped[created_at]
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class CourseReview(Base):
    """One review per enrollment; a second review of the same enrollment updates it."""

    __tablename__ = "course_reviews"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
        CheckConstraint("review_text IS NULL OR length(review_text) <= 5000", name="text_length"),
        ForeignKeyConstraint(
            ["enrollment_id", "user_id", "course_id"],
            ["enrollments.id", "enrollments.user_id", "enrollments.course_id"],
            ondelete="CASCADE",
            name="fk_course_reviews_enrollment",
        ),
        Index("ix_course_reviews_course_id_created_at", "course_id", text("created_at DESC")),
        Index("ix_course_reviews_user_id", "user_id"),
        placed(Placement.LEARNER, "id"),
    )

    id: Mapped[uuid_pk]
    enrollment_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    user_id: Mapped[uuid.UUID]
    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    rating: Mapped[int] = mapped_column(SmallInteger)
    review_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class CourseStats(Base):
    """This shard's partial aggregates of one course (triggers keep them).

    The global figure is the merge over shards: sums of sums and of counts,
    never an average of averages.
    """

    __tablename__ = "course_stats"
    __table_args__ = (
        CheckConstraint(
            "enrollment_count >= 0 AND active_count >= 0 AND completed_count >= 0 "
            "AND dropped_count >= 0",
            name="counts_not_negative",
        ),
        CheckConstraint("rating_count >= 0 AND rating_sum >= rating_count", name="rating"),
        CheckConstraint(
            "enrollment_count = active_count + completed_count", name="live_enrollments"
        ),
        Index("ix_course_stats_enrollment_count", text("enrollment_count DESC")),
        placed(Placement.LOCAL),
    )

    course_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True
    )
    # Live enrollments (active + completed) on this shard.
    enrollment_count: Mapped[int] = mapped_column(Integer, server_default="0")
    active_count: Mapped[int] = mapped_column(Integer, server_default="0")
    completed_count: Mapped[int] = mapped_column(Integer, server_default="0")
    dropped_count: Mapped[int] = mapped_column(Integer, server_default="0")
    rating_sum: Mapped[int] = mapped_column(BigInteger, server_default="0")
    rating_count: Mapped[int] = mapped_column(Integer, server_default="0")
    updated_at: Mapped[updated_at]
