"""Learning functions on the learner's shard: enrollments, progress, reviews, certificates."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import AlreadyEnrolled, Duplicate, InvalidInput, InvalidState, NotFound
from elearn_data.regions import Region
from tests.integration.db_logic.helpers import (
    EU,
    complete,
    enroll,
    enrollment,
    make_course,
    make_user,
    one,
    pgcode_of,
    rows,
    run_together,
    scalar,
    sqlstate,
    stats,
)

ENROLL = "SELECT enroll_user(:e, :u, :c)"


def test_enroll_user_creates_an_active_enrollment_of_the_learners_region(db: Database) -> None:
    course = make_course(db)
    user = make_user(db, Region.AFRICA)
    given = ids.new_id(Region.AFRICA)
    assert scalar(db, EU, ENROLL, e=given, u=user, c=course.id) == given
    row = enrollment(db, given)
    assert (row.status, row.progress_percent, row.completed_lessons) == ("active", 0, 0)
    generated = enroll(db, make_user(db), course.id)
    assert ids.owner_region(generated) is Region.EUROPE


def test_enroll_user_refuses_an_enrollment_id_of_another_region(db: Database) -> None:
    course = make_course(db)
    with sqlstate("EL400", InvalidInput, match="does not carry the learner's region europe"):
        scalar(db, EU, ENROLL, e=ids.new_id(Region.ASIA), u=make_user(db), c=course.id)


def test_enroll_user_with_a_missing_user_or_course_is_not_found(db: Database) -> None:
    course = make_course(db)
    missing_user = ids.new_id(Region.EUROPE)
    with sqlstate("EL404", NotFound, match=f"user {missing_user} not found"):
        scalar(db, EU, ENROLL, e=None, u=missing_user, c=course.id)
    missing_course = ids.new_reference_id()
    with sqlstate("EL404", NotFound, match=f"course {missing_course} not found"):
        scalar(db, EU, ENROLL, e=None, u=make_user(db), c=missing_course)


def test_enroll_user_refuses_an_inactive_user_and_an_unpublished_course(db: Database) -> None:
    user = make_user(db)
    rows(db, EU, "SELECT deactivate_user(:u)", u=user)
    with sqlstate("EL409", InvalidState, match="is inactive and cannot enroll"):
        scalar(db, EU, ENROLL, e=None, u=user, c=make_course(db).id)
    draft = make_course(db, publish=False)
    with sqlstate("EL409", InvalidState, match="is draft, not published"):
        scalar(db, EU, ENROLL, e=None, u=make_user(db), c=draft.id)


def test_enrolling_twice_is_already_enrolled_and_after_dropping_is_allowed(db: Database) -> None:
    course, user = make_course(db), make_user(db)
    first = enroll(db, user, course.id)
    with sqlstate("EL411", AlreadyEnrolled, match="already enrolled"):
        enroll(db, user, course.id)
    scalar(db, EU, "SELECT drop_enrollment(:e)", e=first)
    second = enroll(db, user, course.id)
    assert second != first
    assert enrollment(db, second).status == "active"


def test_concurrent_enrollments_of_one_learner_make_exactly_one(db: Database) -> None:
    course, user = make_course(db), make_user(db)
    results = run_together(8, lambda _: enroll(db, user, course.id))
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert [pgcode_of(r) for r in results if isinstance(r, Exception)] == ["EL411"] * 7
    assert stats(db, EU, course.id).enrollment_count == 1


def test_get_user_enrollments_lists_newest_first_and_filters_by_status(db: Database) -> None:
    user = make_user(db)
    courses = [make_course(db) for _ in range(3)]
    made = [enroll(db, user, c.id) for c in courses]
    scalar(db, EU, "SELECT drop_enrollment(:e)", e=made[1])
    listed = rows(db, EU, "SELECT * FROM get_user_enrollments(:u)", u=user)
    assert [r.enrollment_id for r in listed] == made[::-1]
    assert (listed[0].course_code, listed[0].total_lessons) == (courses[2].code, 2)
    dropped = rows(db, EU, "SELECT * FROM get_user_enrollments(:u, 'DROPPED')", u=user)
    assert [r.enrollment_id for r in dropped] == [made[1]]


def test_get_user_enrollments_rejects_an_unknown_status_and_a_missing_user(db: Database) -> None:
    with sqlstate("EL400", InvalidInput, match="invalid enrollment status 'paused'"):
        rows(db, EU, "SELECT * FROM get_user_enrollments(:u, 'paused')", u=make_user(db))
    with sqlstate("EL404", NotFound):
        rows(db, EU, "SELECT * FROM get_user_enrollments(:u)", u=ids.new_id(Region.EUROPE))


def test_mark_lesson_complete_advances_progress_and_completes_the_enrollment(
    db: Database,
) -> None:
    course = make_course(db, layout=(2, 1))
    eid = enroll(db, make_user(db), course.id)
    assert tuple(complete(db, eid, course.lessons[0], 5)) == (Decimal("33.33"), 1, 3, "active")
    assert tuple(complete(db, eid, course.lessons[1])) == (Decimal("66.67"), 2, 3, "active")
    assert tuple(complete(db, eid, course.lessons[2])) == (Decimal("100.00"), 3, 3, "completed")
    assert enrollment(db, eid).completed_at is not None
    assert stats(db, EU, course.id).completed_count == 1


def test_completing_a_lesson_twice_counts_once_and_accumulates_time(db: Database) -> None:
    course = make_course(db, layout=(2,))
    eid = enroll(db, make_user(db), course.id)
    complete(db, eid, course.lessons[0], 5)
    first_at = one(
        db, EU, "SELECT completed_at FROM lesson_progress WHERE enrollment_id = :e", e=eid
    )[0]
    assert tuple(complete(db, eid, course.lessons[0], 7)) == (Decimal("50.00"), 1, 2, "active")
    progress = one(db, EU, "SELECT * FROM lesson_progress WHERE enrollment_id = :e", e=eid)
    assert (progress.time_spent_minutes, progress.completed_at) == (12, first_at)


def test_mark_lesson_complete_errors_name_the_offending_value(db: Database) -> None:
    course, other = make_course(db), make_course(db)
    eid = enroll(db, make_user(db), course.id)
    missing = ids.new_id(Region.EUROPE)
    with sqlstate("EL404", NotFound, match=f"enrollment {missing} not found"):
        complete(db, missing, course.lessons[0])
    with sqlstate("EL400", InvalidInput, match=f"lesson {other.lessons[0]} is not part of"):
        complete(db, eid, other.lessons[0])
    with sqlstate("EL400", InvalidInput, match="time spent must not be negative: -1"):
        complete(db, eid, course.lessons[0], -1)
    scalar(db, EU, "SELECT drop_enrollment(:e)", e=eid)
    with sqlstate("EL409", InvalidState, match="is dropped"):
        complete(db, eid, course.lessons[0])


def test_reset_lesson_progress_reverts_progress_and_keeps_time_spent(db: Database) -> None:
    course = make_course(db, layout=(2,))
    eid = enroll(db, make_user(db), course.id)
    complete(db, eid, course.lessons[0], 9)
    reset = one(db, EU, "SELECT * FROM reset_lesson_progress(:e, :l)", e=eid, l=course.lessons[0])
    assert tuple(reset) == (Decimal("0.00"), 0, 2, "active")
    progress = one(db, EU, "SELECT * FROM lesson_progress WHERE enrollment_id = :e", e=eid)
    assert (progress.completed, progress.completed_at, progress.time_spent_minutes) == (
        False,
        None,
        9,
    )
    # Resetting a lesson never completed is a no-op.
    again = one(db, EU, "SELECT * FROM reset_lesson_progress(:e, :l)", e=eid, l=course.lessons[1])
    assert tuple(again) == (Decimal("0.00"), 0, 2, "active")


def test_reset_lesson_progress_errors(db: Database) -> None:
    course = make_course(db)
    with sqlstate("EL404", NotFound):
        rows(
            db,
            EU,
            "SELECT * FROM reset_lesson_progress(:e, :l)",
            e=ids.new_id(Region.EUROPE),
            l=course.lessons[0],
        )
    eid = enroll(db, make_user(db), course.id)
    with sqlstate("EL400", InvalidInput):
        rows(db, EU, "SELECT * FROM reset_lesson_progress(:e, :l)", e=eid, l=ids.new_reference_id())
    scalar(db, EU, "SELECT drop_enrollment(:e)", e=eid)
    with sqlstate("EL409", InvalidState):
        rows(db, EU, "SELECT * FROM reset_lesson_progress(:e, :l)", e=eid, l=course.lessons[0])


def test_get_course_progress_lists_every_lesson_in_order(db: Database) -> None:
    course = make_course(db, layout=(1, 2))
    eid = enroll(db, make_user(db), course.id)
    complete(db, eid, course.lessons[2], 4)
    found = rows(db, EU, "SELECT * FROM get_course_progress(:e)", e=eid)
    assert [r.lesson_id for r in found] == course.lessons
    assert [(r.module_order, r.lesson_order) for r in found] == [(1, 1), (2, 1), (2, 2)]
    assert [r.completed for r in found] == [False, False, True]
    assert [r.time_spent_minutes for r in found] == [0, 0, 4]
    assert found[2].completed_at is not None and found[0].completed_at is None
    assert found[1].module_title == "Module 2"
    with sqlstate("EL404", NotFound):
        rows(db, EU, "SELECT * FROM get_course_progress(:e)", e=ids.new_id(Region.EUROPE))


def test_drop_enrollment_returns_the_course_and_refuses_a_second_drop(db: Database) -> None:
    course = make_course(db)
    eid = enroll(db, make_user(db), course.id)
    at = datetime(2026, 5, 1, tzinfo=UTC)
    assert scalar(db, EU, "SELECT drop_enrollment(:e, :at)", e=eid, at=at) == course.id
    row = enrollment(db, eid)
    assert (row.status, row.dropped_at) == ("dropped", at)
    with sqlstate("EL409", InvalidState, match="already dropped"):
        scalar(db, EU, "SELECT drop_enrollment(:e)", e=eid)
    with sqlstate("EL404", NotFound):
        scalar(db, EU, "SELECT drop_enrollment(:e)", e=ids.new_id(Region.EUROPE))


def test_dropping_a_certified_enrollment_withdraws_the_certificate(db: Database) -> None:
    course = make_course(db, layout=(1,))
    eid = enroll(db, make_user(db), course.id)
    complete(db, eid, course.lessons[0])
    scalar(db, EU, "SELECT issue_certificate(:e, 'https://cert.example.org/1')", e=eid)
    scalar(db, EU, "SELECT drop_enrollment(:e)", e=eid)
    row = enrollment(db, eid)
    assert (row.status, row.certificate_url, row.certificate_issued_at) == ("dropped", None, None)


UPSERT = "SELECT upsert_course_review(:r, :e, :rating, :text)"


def test_upsert_course_review_updates_the_existing_review_and_returns_its_id(
    db: Database,
) -> None:
    course = make_course(db)
    eid = enroll(db, make_user(db), course.id)
    review = scalar(db, EU, UPSERT, r=None, e=eid, rating=4, text="good")
    assert ids.owner_region(review) is Region.EUROPE
    again = scalar(db, EU, UPSERT, r=ids.new_id(Region.EUROPE), e=eid, rating=2, text="meh")
    assert again == review
    row = one(db, EU, "SELECT * FROM course_reviews WHERE enrollment_id = :e", e=eid)
    assert (row.id, row.rating, row.review_text) == (review, 2, "meh")
    assert (stats(db, EU, course.id).rating_sum, stats(db, EU, course.id).rating_count) == (2, 1)


@pytest.mark.parametrize(
    ("rating", "text", "message"),
    [
        (0, None, "rating must be between 1 and 5: 0"),
        (6, None, "rating must be between 1 and 5: 6"),
        (None, None, "rating must be between 1 and 5: NULL"),
        (3, "x" * 5001, "review text is too long: 5001 characters"),
    ],
)
def test_upsert_course_review_rejects_out_of_range_input(
    db: Database, rating: int | None, text: str | None, message: str
) -> None:
    eid = enroll(db, make_user(db), make_course(db).id)
    with sqlstate("EL400", InvalidInput, match=message):
        scalar(db, EU, UPSERT, r=None, e=eid, rating=rating, text=text)


def test_upsert_course_review_of_a_missing_or_dropped_enrollment(db: Database) -> None:
    with sqlstate("EL404", NotFound):
        scalar(db, EU, UPSERT, r=None, e=ids.new_id(Region.EUROPE), rating=3, text=None)
    eid = enroll(db, make_user(db), make_course(db).id)
    scalar(db, EU, "SELECT drop_enrollment(:e)", e=eid)
    with sqlstate("EL409", InvalidState, match="dropped"):
        scalar(db, EU, UPSERT, r=None, e=eid, rating=3, text=None)


def test_a_review_id_already_used_by_another_enrollment_is_a_duplicate(db: Database) -> None:
    course = make_course(db)
    first = enroll(db, make_user(db), course.id)
    second = enroll(db, make_user(db), course.id)
    review = scalar(db, EU, UPSERT, r=None, e=first, rating=5, text=None)
    with sqlstate("23505", Duplicate):
        scalar(db, EU, UPSERT, r=review, e=second, rating=1, text=None)


def test_concurrent_first_reviews_of_one_enrollment_make_one_review(db: Database) -> None:
    course = make_course(db)
    eid = enroll(db, make_user(db), course.id)
    results = run_together(
        10, lambda i: scalar(db, EU, UPSERT, r=None, e=eid, rating=1 + i % 5, text=None)
    )
    assert not [r for r in results if isinstance(r, Exception)]
    assert len(set(results)) == 1
    count, total = one(
        db, EU, "SELECT count(*), sum(rating) FROM course_reviews WHERE enrollment_id = :e", e=eid
    )
    row = stats(db, EU, course.id)
    assert (count, row.rating_count, row.rating_sum) == (1, 1, total)


def test_delete_course_review_removes_it_and_a_missing_one_is_not_found(db: Database) -> None:
    course = make_course(db)
    eid = enroll(db, make_user(db), course.id)
    review = scalar(db, EU, UPSERT, r=None, e=eid, rating=5, text=None)
    rows(db, EU, "SELECT delete_course_review(:r)", r=review)
    assert rows(db, EU, "SELECT 1 FROM course_reviews WHERE id = :r", r=review) == []
    with sqlstate("EL404", NotFound, match=f"review {review} not found"):
        rows(db, EU, "SELECT delete_course_review(:r)", r=review)


def test_issue_certificate_for_a_completed_enrollment_only(db: Database) -> None:
    course = make_course(db, layout=(1,))
    eid = enroll(db, make_user(db), course.id)
    with sqlstate("EL409", InvalidState, match="is active, not completed"):
        scalar(db, EU, "SELECT issue_certificate(:e, 'https://c.example.org/x')", e=eid)
    complete(db, eid, course.lessons[0])
    issued = scalar(db, EU, "SELECT issue_certificate(:e, 'https://c.example.org/x')", e=eid)
    again = scalar(db, EU, "SELECT issue_certificate(:e, 'https://c.example.org/x')", e=eid)
    assert issued == again
    row = enrollment(db, eid)
    assert (row.certificate_url, row.certificate_issued_at) == ("https://c.example.org/x", issued)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://c.example.org/x",
        "javascript:alert(1)",
        "",
        None,
        "https:// spaced",
        "https://" + "x" * 500,
    ],
)
def test_issue_certificate_needs_an_http_url(db: Database, url: str | None) -> None:
    course = make_course(db, layout=(1,))
    eid = enroll(db, make_user(db), course.id)
    complete(db, eid, course.lessons[0])
    with sqlstate("EL400", InvalidInput, match="http"):
        scalar(db, EU, "SELECT issue_certificate(:e, :u)", e=eid, u=url)


def test_issue_certificate_of_a_missing_enrollment_is_not_found(db: Database) -> None:
    with sqlstate("EL404", NotFound):
        scalar(db, EU, "SELECT issue_certificate(:e, 'https://x.org')", e=ids.new_id(Region.EUROPE))
