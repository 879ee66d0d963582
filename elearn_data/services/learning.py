"""``db.enrollments`` and ``db.reviews``: learning across regions, with global capacity."""

from __future__ import annotations

import uuid

from elearn_data import ids, validation
from elearn_data.models.base import ENROLLMENT_STATUSES
from elearn_data.repositories.learning import LearningRepository
from elearn_data.repositories.views import EnrollmentView, ProgressView, ReviewView
from elearn_data.services.base import Units
from elearn_data.services.catalog import catalog_id
from elearn_data.sharding.routing import Router


def owned_id(name: str, value: object) -> uuid.UUID:
    """Return ``value`` as a learner-owned id (NotFound when it is not one of ours)."""
    ident = validation.identifier(name, value)
    ids.owner_region(ident)
    return ident


class Enrollments:
    """The enrollments part of the API (``units`` runs each call, ``router`` names shards)."""

    def __init__(self, units: Units, router: Router) -> None:
        self._units = units
        self._router = router

    def _shard(self, owned: uuid.UUID) -> str:
        return self._router.shard_of_owner(owned)

    def enroll(self, user_id: uuid.UUID, course_id: uuid.UUID) -> uuid.UUID:
        """Enroll a learner (any region) in a course (any region); return the enrollment id.

        Capacity holds globally: the seat is taken on the course's home shard in
        the same (two-phase) commit as the enrollment on the learner's shard.

        Raises:
            NotFound: no such user or course.
            InvalidState: course not published, or user inactive.
            AlreadyEnrolled: a live enrollment exists.
            CourseFull: every seat is taken.
        """
        user = owned_id("user_id", user_id)
        course = catalog_id("course_id", course_id)
        enrollment_id = ids.new_id(ids.owner_region(user))
        self._units.write(
            self._shard(user),
            lambda uow: LearningRepository(uow).enroll(enrollment_id, user, course),
        )
        return enrollment_id

    def get(self, enrollment_id: uuid.UUID) -> EnrollmentView:
        """Return an enrollment. Raises NotFound."""
        eid = owned_id("enrollment_id", enrollment_id)
        with self._units.reader(self._shard(eid)) as uow:
            return LearningRepository(uow).get(eid)

    def for_user(self, user_id: uuid.UUID, status: str | None = None) -> list[EnrollmentView]:
        """Return the learner's enrollments, newest first (optionally of one status)."""
        user = owned_id("user_id", user_id)
        if status is not None:
            validation.choice("status", status, ENROLLMENT_STATUSES)
        with self._units.reader(self._shard(user)) as uow:
            return LearningRepository(uow).for_user(user, status)

    def complete_lesson(
        self, enrollment_id: uuid.UUID, lesson_id: uuid.UUID, *, time_spent_minutes: int = 0
    ) -> ProgressView:
        """Mark a lesson complete (idempotent; time accumulates); return the progress.

        Raises:
            NotFound: no such enrollment.
            InvalidInput: the lesson is not in the enrollment's course.
            InvalidState: the enrollment was dropped.
        """
        eid = owned_id("enrollment_id", enrollment_id)
        lesson = catalog_id("lesson_id", lesson_id)
        minutes = validation.required_integer(
            "time_spent_minutes", time_spent_minutes, minimum=0, maximum=100_000
        )
        return self._units.write(
            self._shard(eid),
            lambda uow: LearningRepository(uow).complete_lesson(eid, lesson, minutes),
        )

    def reset_lesson(self, enrollment_id: uuid.UUID, lesson_id: uuid.UUID) -> ProgressView:
        """Mark a lesson not complete; progress and completion revert. Raises NotFound."""
        eid = owned_id("enrollment_id", enrollment_id)
        lesson = catalog_id("lesson_id", lesson_id)
        return self._units.write(
            self._shard(eid), lambda uow: LearningRepository(uow).reset_lesson(eid, lesson)
        )

    def progress(self, enrollment_id: uuid.UUID) -> ProgressView:
        """Return the enrollment's progress, lesson by lesson. Raises NotFound."""
        eid = owned_id("enrollment_id", enrollment_id)
        with self._units.reader(self._shard(eid)) as uow:
            return LearningRepository(uow).progress(eid)

    def drop(self, enrollment_id: uuid.UUID) -> None:
        """Drop the enrollment and free its seat.

        Raises:
            NotFound: no such enrollment.
            InvalidState: already dropped.
        """
        eid = owned_id("enrollment_id", enrollment_id)
        self._units.write(self._shard(eid), lambda uow: LearningRepository(uow).drop(eid))

    def issue_certificate(self, enrollment_id: uuid.UUID, url: str) -> None:
        """Attach a certificate URL to a completed enrollment.

        Raises:
            NotFound: no such enrollment.
            InvalidState: not completed.
            InvalidInput: not an http(s) URL.
        """
        eid = owned_id("enrollment_id", enrollment_id)
        clean = validation.url("url", url)
        assert clean is not None
        self._units.write(
            self._shard(eid), lambda uow: LearningRepository(uow).issue_certificate(eid, clean)
        )


class Reviews:
    """The reviews part of the API (``units`` runs each call, ``router`` names shards)."""

    def __init__(self, units: Units, router: Router) -> None:
        self._units = units
        self._router = router

    def add(self, enrollment_id: uuid.UUID, rating: int, text: str | None = None) -> uuid.UUID:
        """Review an enrollment's course (a second call updates the review); return its id.

        Raises:
            NotFound: no such enrollment.
            InvalidInput: rating outside 1..5, text longer than 5000 characters.
            InvalidState: the enrollment was dropped.
        """
        eid = owned_id("enrollment_id", enrollment_id)
        clean_rating = validation.required_integer("rating", rating, minimum=1, maximum=5)
        body = validation.text("text", text, max_length=5000, required=False, strip=False)
        review_id = ids.new_id(ids.owner_region(eid))
        return self._units.write(
            self._router.shard_of_owner(eid),
            lambda uow: LearningRepository(uow).upsert_review(review_id, eid, clean_rating, body),
        )

    def delete(self, review_id: uuid.UUID) -> None:
        """Delete a review (the course rating follows). Raises NotFound."""
        rid = owned_id("review_id", review_id)
        self._units.write(
            self._router.shard_of_owner(rid),
            lambda uow: LearningRepository(uow).delete_review(rid),
        )

    def for_course(self, course_id: uuid.UUID, limit: int = 50) -> list[ReviewView]:
        """Return a course's reviews from every region, newest first."""
        course = catalog_id("course_id", course_id)
        clean_limit = validation.required_integer("limit", limit, minimum=1, maximum=1000)
        with self._units.reader() as uow:
            return LearningRepository(uow).reviews_for_course(course, clean_limit)
