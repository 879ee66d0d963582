"""Enrollments, progress and reviews (learner's shard) and seats (the course's home shard).

An enrollment is written on the learner's shard (``enroll_user``) and takes a
seat on the course's home shard (``reserve_seat``). Both happen in one unit of
work: when the shards differ, the commit is a two-phase commit coordinated by
the learner's shard, so a seat is never taken without an enrollment nor an
enrollment made without a seat. Lock order: the learner's rows first, then the
seat ledger row (every enroll and drop does the same, so they cannot deadlock).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, text

from elearn_data.errors import NotFound
from elearn_data.models import Course, CourseReview, Enrollment
from elearn_data.repositories.views import (
    EnrollmentView,
    LessonProgressView,
    ProgressView,
    ReviewView,
)
from elearn_data.sharding.unit_of_work import UnitOfWork, writing

# The writing functions are marked (unit_of_work.writing): a seat taken or given
# back on another shard is then prepared without asking the server whether it wrote.
_ENROLL = writing(text("SELECT enroll_user(:enrollment_id, :user_id, :course_id)"))
_RESERVE = writing(text("SELECT reserve_seat(:course_id)"))
_RELEASE = writing(text("SELECT release_seat(:course_id)"))
_DROP = writing(text("SELECT drop_enrollment(:enrollment_id, now())"))
_COMPLETE = writing(
    text("SELECT * FROM mark_lesson_complete(:enrollment_id, :lesson_id, :minutes)")
)
_RESET = writing(text("SELECT * FROM reset_lesson_progress(:enrollment_id, :lesson_id)"))
_PROGRESS = text("SELECT * FROM get_course_progress(:enrollment_id)")
_CERTIFICATE = writing(text("SELECT issue_certificate(:enrollment_id, :url)"))
_UPSERT_REVIEW = writing(
    text("SELECT upsert_course_review(:review_id, :enrollment_id, :rating, :text)")
)
_DELETE_REVIEW = writing(text("SELECT delete_course_review(:review_id)"))

_ENROLLMENT_COLUMNS = (
    Enrollment.id,
    Enrollment.user_id,
    Enrollment.course_id,
    Enrollment.status,
    Enrollment.progress_percent,
    Enrollment.enrolled_at,
    Enrollment.completed_at,
    Enrollment.certificate_url,
)
_REVIEW_COLUMNS = (
    CourseReview.id,
    CourseReview.enrollment_id,
    CourseReview.course_id,
    CourseReview.user_id,
    CourseReview.rating,
    CourseReview.review_text,
    CourseReview.created_at,
)


def _enrollment(row: Mapping[Any, Any]) -> EnrollmentView:
    return EnrollmentView(
        id=row["id"],
        user_id=row["user_id"],
        course_id=row["course_id"],
        status=row["status"],
        progress=row["progress_percent"],
        enrolled_at=row["enrolled_at"],
        completed_at=row["completed_at"],
        certificate_url=row["certificate_url"],
    )


def _review(row: Any) -> ReviewView:
    return ReviewView(
        id=row[0],
        enrollment_id=row[1],
        course_id=row[2],
        user_id=row[3],
        rating=row[4],
        text=row[5],
        created_at=row[6],
    )


class LearningRepository:
    """Enrollments, progress, seats and reviews inside one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def _learner_shard(self, owned_id: uuid.UUID) -> str:
        return self.uow.router.shard_of_owner(owned_id)

    # ------------------------------------------------------------ enrollments

    def capacity(self, course_id: uuid.UUID, shard: str) -> tuple[bool, int | None]:
        """Return (exists, max_enrollments) of a course, read on ``shard``.

        Read ``FOR SHARE``: a capacity being set (``Catalog.set_capacity``) holds
        the course row, so this waits for it and then sees the new capacity, and
        the setter waits for an enrollment that read the old one (it is counted).
        """
        row = self.uow.execute(
            select(Course.max_enrollments).where(Course.id == course_id).with_for_update(read=True),
            shard=shard,
        ).first()
        return (False, None) if row is None else (True, row[0])

    def enroll(self, enrollment_id: uuid.UUID, user_id: uuid.UUID, course_id: uuid.UUID) -> None:
        """Create the enrollment and take a seat (if the course has a capacity).

        Raises:
            NotFound, InvalidState, AlreadyEnrolled (learner's shard), CourseFull (seat ledger).
        """
        learner = self._learner_shard(user_id)
        params = {"enrollment_id": enrollment_id, "user_id": user_id, "course_id": course_id}
        self.uow.execute(_ENROLL, params, shard=learner)
        exists, capacity = self.capacity(course_id, learner)
        if exists and capacity is not None:
            home = self.uow.router.home_shard_of(course_id)
            self.uow.execute(_RESERVE, {"course_id": course_id}, shard=home)

    def drop(self, enrollment_id: uuid.UUID) -> None:
        """Drop the enrollment and give its seat back."""
        learner = self._learner_shard(enrollment_id)
        course_id = self.uow.execute(
            _DROP, {"enrollment_id": enrollment_id}, shard=learner
        ).scalar_one()
        _, capacity = self.capacity(course_id, learner)
        if capacity is not None:
            home = self.uow.router.home_shard_of(course_id)
            self.uow.execute(_RELEASE, {"course_id": course_id}, shard=home)

    def get(self, enrollment_id: uuid.UUID) -> EnrollmentView:
        row = (
            self.uow.execute(
                select(*_ENROLLMENT_COLUMNS).where(Enrollment.id == enrollment_id),
                shard=self._learner_shard(enrollment_id),
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound(f"enrollment {enrollment_id} not found")
        return _enrollment(row)

    def for_user(self, user_id: uuid.UUID, status: str | None) -> list[EnrollmentView]:
        stmt = select(*_ENROLLMENT_COLUMNS).where(Enrollment.user_id == user_id)
        if status is not None:
            stmt = stmt.where(Enrollment.status == status)
        stmt = stmt.order_by(Enrollment.enrolled_at.desc(), Enrollment.id.desc())
        rows = self.uow.execute(stmt, shard=self._learner_shard(user_id)).mappings()
        return [_enrollment(row) for row in rows]

    # --------------------------------------------------------------- progress

    def complete_lesson(
        self, enrollment_id: uuid.UUID, lesson_id: uuid.UUID, minutes: int
    ) -> ProgressView:
        params = {"enrollment_id": enrollment_id, "lesson_id": lesson_id, "minutes": minutes}
        self.uow.execute(_COMPLETE, params, shard=self._learner_shard(enrollment_id))
        return self.progress(enrollment_id)

    def reset_lesson(self, enrollment_id: uuid.UUID, lesson_id: uuid.UUID) -> ProgressView:
        params = {"enrollment_id": enrollment_id, "lesson_id": lesson_id}
        self.uow.execute(_RESET, params, shard=self._learner_shard(enrollment_id))
        return self.progress(enrollment_id)

    def progress(self, enrollment_id: uuid.UUID) -> ProgressView:
        enrollment = self.get(enrollment_id)
        rows = self.uow.execute(
            _PROGRESS,
            {"enrollment_id": enrollment_id},
            shard=self._learner_shard(enrollment_id),
        ).mappings()
        lessons = tuple(
            LessonProgressView(
                lesson_id=row["lesson_id"],
                module_title=row["module_title"],
                lesson_title=row["lesson_title"],
                completed=bool(row["completed"]),
                completed_at=row["completed_at"],
                time_spent_minutes=int(row["time_spent_minutes"] or 0),
            )
            for row in rows
        )
        return ProgressView(
            enrollment_id=enrollment_id,
            percentage=enrollment.progress,
            completed_lessons=sum(1 for lesson in lessons if lesson.completed),
            total_lessons=len(lessons),
            lessons=lessons,
            status=enrollment.status,
        )

    def issue_certificate(self, enrollment_id: uuid.UUID, url: str) -> None:
        self.uow.execute(
            _CERTIFICATE,
            {"enrollment_id": enrollment_id, "url": url},
            shard=self._learner_shard(enrollment_id),
        )

    # ---------------------------------------------------------------- reviews

    def upsert_review(
        self, review_id: uuid.UUID, enrollment_id: uuid.UUID, rating: int, body: str | None
    ) -> uuid.UUID:
        params = {
            "review_id": review_id,
            "enrollment_id": enrollment_id,
            "rating": rating,
            "text": body,
        }
        result = self.uow.execute(
            _UPSERT_REVIEW, params, shard=self._learner_shard(enrollment_id)
        ).scalar_one()
        return uuid.UUID(str(result))

    def delete_review(self, review_id: uuid.UUID) -> None:
        self.uow.execute(
            _DELETE_REVIEW, {"review_id": review_id}, shard=self._learner_shard(review_id)
        )

    def reviews_for_course(self, course_id: uuid.UUID, limit: int) -> list[ReviewView]:
        """Newest reviews of a course from every shard (each shard's newest ``limit``, merged)."""
        stmt = (
            select(*_REVIEW_COLUMNS)
            .where(CourseReview.course_id == course_id)
            .order_by(CourseReview.created_at.desc(), CourseReview.id.desc())
            .limit(limit)
        )
        rows = [
            _review(row)
            for shard in self.uow.router.shards
            for row in self.uow.execute(stmt, shard=shard)
        ]
        rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return rows[:limit]
