"""Gamification: point values and badges (catalog), ledger, summaries and awards (learner's).

``point_rules`` (what each event pays) and ``badges`` (criterion and threshold)
are reference rows, written to every shard in the catalog's two-phase commit.
A learner's ``points_ledger`` (append-only for the application role: one row
per paid event, keyed so that an event can never pay twice), summary row
(``learner_points``) and ``badge_awards`` live on the learner's shard and are
written by the triggers of revision 0009 in the transaction of the event.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from elearn_data.models.base import Base, Placement, created_at, one_of, placed, updated_at

POINT_EVENTS = (
    "lesson_completed",
    "course_completed",
    "assessment_passed",
    "review_written",
    "streak_day",
)
# What the migration sets (db.gamification.set_points changes it).
DEFAULT_POINTS: dict[str, int] = {
    "lesson_completed": 10,
    "course_completed": 100,
    "assessment_passed": 25,
    "review_written": 5,
    "streak_day": 5,
}
BADGE_CRITERIA = (
    "lessons_completed",
    "courses_completed",
    "assessments_passed",
    "reviews_written",
    "streak_days",
    "points",
)


class PointRule(Base):
    """How many points one event pays; the same row on every shard."""

    __tablename__ = "point_rules"
    __table_args__ = (
        CheckConstraint(one_of("event", POINT_EVENTS), name="event"),
        CheckConstraint("points >= 0", name="points_not_negative"),
        placed(Placement.REFERENCE),
    )

    event: Mapped[str] = mapped_column(String(32), primary_key=True)
    points: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[updated_at]


class Badge(Base):
    """A badge: awarded once to a learner whose criterion reaches the threshold."""

    __tablename__ = "badges"
    __table_args__ = (
        CheckConstraint(one_of("criterion", BADGE_CRITERIA), name="criterion"),
        CheckConstraint("threshold >= 0", name="threshold_not_negative"),
        CheckConstraint("length(btrim(name)) > 0", name="name_not_blank"),
        placed(Placement.REFERENCE),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    criterion: Mapped[str] = mapped_column(String(32))
    threshold: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[created_at]


class PointsLedgerEntry(Base):
    """One paid event of a learner (append-only); its key makes a second payment impossible."""

    __tablename__ = "points_ledger"
    __table_args__ = (
        CheckConstraint("points >= 0", name="points_not_negative"),
        # history(user_id) newest first.
        Index("ix_points_ledger_user_id_awarded_at", "user_id", text("awarded_at DESC")),
        # The leaderboard of a week or a month (points awarded since its start).
        Index("ix_points_ledger_awarded_at", "awarded_at"),
        # The leaderboard of one course.
        Index("ix_points_ledger_course_id", "course_id", "user_id"),
        placed(Placement.LEARNER, "user_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    event: Mapped[str] = mapped_column(
        String(32), ForeignKey("point_rules.event", ondelete="RESTRICT"), primary_key=True
    )
    # The lesson, course or assessment id, or the ISO day of a streak day.
    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The course the event belongs to (none for a streak day).
    course_id: Mapped[uuid.UUID | None]
    points: Mapped[int] = mapped_column(Integer)
    awarded_at: Mapped[datetime]


class LearnerPoints(Base):
    """A learner's totals, counters and streaks (the triggers keep them with the ledger)."""

    __tablename__ = "learner_points"
    __table_args__ = (
        CheckConstraint(
            "points >= 0 AND lessons_completed >= 0 AND courses_completed >= 0"
            " AND assessments_passed >= 0 AND reviews_written >= 0",
            name="counts_not_negative",
        ),
        CheckConstraint("streak_days >= 0 AND longest_streak >= streak_days", name="streaks"),
        # The all-time leaderboard: a shard's best learners first, ties by user id.
        Index("ix_learner_points_points", text("points DESC"), "user_id"),
        placed(Placement.LEARNER, "user_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    points: Mapped[int] = mapped_column(BigInteger, server_default="0")
    lessons_completed: Mapped[int] = mapped_column(Integer, server_default="0")
    courses_completed: Mapped[int] = mapped_column(Integer, server_default="0")
    assessments_passed: Mapped[int] = mapped_column(Integer, server_default="0")
    reviews_written: Mapped[int] = mapped_column(Integer, server_default="0")
    # Consecutive UTC days with activity ending at last_active_day, and the longest run.
    streak_days: Mapped[int] = mapped_column(Integer, server_default="0")
    longest_streak: Mapped[int] = mapped_column(Integer, server_default="0")
    last_active_day: Mapped[date | None]
    updated_at: Mapped[updated_at]


class BadgeAward(Base):
    """A badge a learner holds (once: the key is the learner and the badge)."""

    __tablename__ = "badge_awards"
    __table_args__ = (
        Index("ix_badge_awards_badge_id", "badge_id"),
        placed(Placement.LEARNER, "user_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    badge_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("badges.id", ondelete="CASCADE"), primary_key=True
    )
    awarded_at: Mapped[created_at]
