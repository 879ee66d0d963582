"""db.enrollments and db.reviews: cross-region enrollment, global capacity, progress."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import (
    AlreadyEnrolled,
    CourseFull,
    InvalidInput,
    InvalidState,
    NotFound,
)
from elearn_data.models import CourseSeats, Enrollment
from elearn_data.regions import Region
from elearn_data.sharding.merge import sum_over_shards
from tests.integration.api.helpers import published_course, register


def seats_taken(db: Database, course: object) -> int:
    home = db.router.home_shard_of(course)
    with db.writer(home) as uow:
        return int(
            uow.execute(
                select(CourseSeats.taken).where(CourseSeats.course_id == course), shard=home
            ).scalar_one()
        )


def live_enrollments(db: Database, course: object) -> int:
    stmt = select(func.count()).where(
        Enrollment.course_id == course, Enrollment.status != "dropped"
    )
    with db.writer() as uow:
        return int(sum_over_shards(uow, stmt))


def test_a_learner_enrolls_in_a_course_of_another_region(clean: Database) -> None:
    course, _ = published_course(clean, instructor_region="asia", max_enrollments=3)
    learner = register(clean, "south_america")
    enrollment_id = clean.enrollments.enroll(learner, course)
    assert ids.owner_region(enrollment_id) is Region.SOUTH_AMERICA
    enrollment = clean.enrollments.get(enrollment_id)
    assert (enrollment.user_id, enrollment.course_id, enrollment.status) == (
        learner,
        course,
        "active",
    )
    assert enrollment.progress == Decimal("0")
    assert seats_taken(clean, course) == 1
    with pytest.raises(AlreadyEnrolled):
        clean.enrollments.enroll(learner, course)
    assert seats_taken(clean, course) == 1


def test_enrollment_beyond_capacity_raises_course_full_and_drop_frees_the_seat(
    clean: Database,
) -> None:
    course, _ = published_course(clean, instructor_region="europe", max_enrollments=2)
    first = clean.enrollments.enroll(register(clean, "asia"), course)
    clean.enrollments.enroll(register(clean, "europe"), course)
    late = register(clean, "north_america")
    with pytest.raises(CourseFull):
        clean.enrollments.enroll(late, course)
    assert clean.enrollments.for_user(late) == []  # nothing written for the loser
    clean.enrollments.drop(first)
    assert clean.enrollments.get(first).status == "dropped"
    with pytest.raises(InvalidState):
        clean.enrollments.drop(first)
    clean.enrollments.enroll(late, course)
    assert seats_taken(clean, course) == 2


def test_sixty_four_learners_from_three_regions_race_for_ten_seats(clean: Database) -> None:
    course, _ = published_course(clean, instructor_region="africa", max_enrollments=10)
    regions = ["north_america", "europe", "oceania"]
    learners = [register(clean, regions[i % 3]) for i in range(64)]
    barrier = threading.Barrier(len(learners))

    def attempt(learner: object) -> str:
        barrier.wait()
        try:
            clean.enrollments.enroll(learner, course)  # type: ignore[arg-type]
            return "enrolled"
        except CourseFull:
            return "full"

    with ThreadPoolExecutor(len(learners)) as pool:
        outcome = Counter(pool.map(attempt, learners))
    assert outcome == {"enrolled": 10, "full": 54}
    assert seats_taken(clean, course) == 10
    assert live_enrollments(clean, course) == 10
    assert clean.catalog.get_course(course).enrollment_count == 10


def test_enrollment_refuses_unpublished_courses_inactive_users_and_unknown_ids(
    clean: Database,
) -> None:
    instructor = register(clean, "europe", role="instructor")
    draft = clean.catalog.create_course(code="DRAFT-1", title="Draft", instructor_id=instructor)
    learner = register(clean, "europe")
    with pytest.raises(InvalidState, match="not published"):
        clean.enrollments.enroll(learner, draft)
    course, _ = published_course(clean)
    sleeper = register(clean, "asia")
    clean.users.deactivate(sleeper)
    with pytest.raises(InvalidState):
        clean.enrollments.enroll(sleeper, course)
    with pytest.raises(NotFound):
        clean.enrollments.enroll(ids.new_id(Region.ASIA), course)
    with pytest.raises(NotFound):
        clean.enrollments.enroll(learner, ids.new_reference_id(Region.ASIA))
    with pytest.raises(NotFound):
        clean.enrollments.get(ids.new_id(Region.EUROPE))


def test_completing_lessons_moves_progress_and_reset_reverts_completion(clean: Database) -> None:
    course, lessons = published_course(clean, lessons=4)
    enrollment = clean.enrollments.enroll(register(clean, "africa"), course)
    progress = clean.enrollments.complete_lesson(enrollment, lessons[0], time_spent_minutes=15)
    assert (progress.completed_lessons, progress.total_lessons) == (1, 4)
    assert progress.percentage == Decimal("25.00")
    # Idempotent: a second completion counts once; time accumulates.
    progress = clean.enrollments.complete_lesson(enrollment, lessons[0], time_spent_minutes=5)
    assert progress.completed_lessons == 1
    assert progress.lessons[0].time_spent_minutes == 20
    for lesson in lessons[1:]:
        progress = clean.enrollments.complete_lesson(enrollment, lesson)
    assert progress.percentage == Decimal("100.00")
    assert clean.enrollments.get(enrollment).status == "completed"
    assert clean.enrollments.get(enrollment).completed_at is not None
    clean.enrollments.issue_certificate(enrollment, "https://certs.example.org/1")
    assert clean.enrollments.get(enrollment).certificate_url == "https://certs.example.org/1"

    progress = clean.enrollments.reset_lesson(enrollment, lessons[2])
    assert progress.percentage == Decimal("75.00")
    after = clean.enrollments.get(enrollment)
    assert (after.status, after.completed_at, after.certificate_url) == ("active", None, None)
    with pytest.raises(InvalidState):
        clean.enrollments.issue_certificate(enrollment, "https://certs.example.org/2")
    assert [lesson.completed for lesson in clean.enrollments.progress(enrollment).lessons] == [
        True,
        True,
        False,
        True,
    ]


def test_a_lesson_of_another_course_is_invalid_input(clean: Database) -> None:
    course, _ = published_course(clean)
    _, other_lessons = published_course(clean)
    enrollment = clean.enrollments.enroll(register(clean, "europe"), course)
    with pytest.raises(InvalidInput):
        clean.enrollments.complete_lesson(enrollment, other_lessons[0])
    with pytest.raises(InvalidInput):
        clean.enrollments.complete_lesson(enrollment, other_lessons[0], time_spent_minutes=-1)


def test_for_user_lists_newest_first_and_filters_by_status(clean: Database) -> None:
    learner = register(clean, "oceania")
    courses = [published_course(clean)[0] for _ in range(3)]
    enrollments = [clean.enrollments.enroll(learner, c) for c in courses]
    clean.enrollments.drop(enrollments[0])
    listed = clean.enrollments.for_user(learner)
    assert [e.id for e in listed] == enrollments[::-1]
    assert [e.id for e in clean.enrollments.for_user(learner, status="dropped")] == [enrollments[0]]
    with pytest.raises(InvalidInput):
        clean.enrollments.for_user(learner, status="paused")


def test_one_review_per_enrollment_and_the_rating_follows_updates_and_deletes(
    clean: Database,
) -> None:
    course, _ = published_course(clean)
    enrollment = clean.enrollments.enroll(register(clean, "europe"), course)
    review = clean.reviews.add(enrollment, 2, "meh")
    assert clean.reviews.add(enrollment, 5, "changed my mind") == review
    listed = clean.reviews.for_course(course)
    assert [(r.id, r.rating, r.text) for r in listed] == [(review, 5, "changed my mind")]
    assert clean.catalog.get_course(course).rating == Decimal("5.00")
    clean.reviews.delete(review)
    view = clean.catalog.get_course(course)
    assert (view.rating, view.rating_count) == (None, 0)
    with pytest.raises(NotFound):
        clean.reviews.delete(review)
    for bad in (0, 6, -1):
        with pytest.raises(InvalidInput):
            clean.reviews.add(enrollment, bad)
    with pytest.raises(InvalidInput):
        clean.reviews.add(enrollment, True)  # type: ignore[arg-type]


def test_reviews_for_course_merge_every_region_newest_first(clean: Database) -> None:
    course, _ = published_course(clean)
    made = []
    for region in ["asia", "europe", "north_america", "asia"]:
        enrollment = clean.enrollments.enroll(register(clean, region), course)
        made.append(clean.reviews.add(enrollment, 4))
    listed = clean.reviews.for_course(course, limit=3)
    assert [r.id for r in listed] == made[::-1][:3]
