"""Regression tests for the defects of the reference implementation's database logic.

Each test is named for the defect it guards against:

* 4 of its 16 functions always failed: RETURNS TABLE declared ``text`` where the
  columns are ``varchar`` ("structure of query does not match function result type");
* the rating trigger ignored DELETE;
* completion never reverted when a lesson was un-completed;
* enrolling seeded one progress row per lesson, with a recount per row (O(n^2));
* invoice numbers were built from the clock and collided within one second;
* completing a payment twice made two invoices;
* revenue statistics were inflated by join fan-out.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import InvalidState
from elearn_data.regions import Region
from tests.integration.db_logic.helpers import (
    EU,
    complete,
    connection,
    enroll,
    enrollment,
    make_course,
    make_user,
    one,
    pay,
    purchase,
    rows,
    run_together,
    scalar,
    sqlstate,
    stats,
    unique,
)


def test_regression_every_set_returning_function_runs_and_declares_matching_types(
    db: Database,
) -> None:
    instructor = ids.new_id(Region.EUROPE)
    course = make_course(db, instructor_id=instructor, price=10, title="Regression Python")
    email = f"{unique('rt')}@example.org"
    user = uuid_of(
        scalar(
            db, EU, "SELECT create_user_with_profile(NULL, :m, 'h', 'A', 'B', 'europe')", m=email
        )
    )
    eid = enroll(db, user, course.id)
    scalar(db, EU, "SELECT upsert_course_review(NULL, :e, 4, 'fine')", e=eid)
    pay(db, purchase(db, user, course.id))
    calls: dict[str, tuple[str, dict[str, Any]]] = {
        "get_user_by_email": ("get_user_by_email(:m)", {"m": email}),
        "get_course_details": ("get_course_details(:c)", {"c": course.id}),
        "get_popular_courses": ("get_popular_courses(NULL)", {}),
        "search_courses": ("search_courses('regression python')", {}),
        "get_course_curriculum": ("get_course_curriculum(:c)", {"c": course.id}),
        "get_user_enrollments": ("get_user_enrollments(:u)", {"u": user}),
        "mark_lesson_complete": (
            "mark_lesson_complete(:e, :l, 1)",
            {"e": eid, "l": course.lessons[0]},
        ),
        "reset_lesson_progress": (
            "reset_lesson_progress(:e, :l)",
            {"e": eid, "l": course.lessons[0]},
        ),
        "get_course_progress": ("get_course_progress(:e)", {"e": eid}),
        "get_user_transactions": ("get_user_transactions(:u)", {"u": user}),
        "get_instructor_stats": ("get_instructor_stats(:i)", {"i": instructor}),
        "get_platform_stats": ("get_platform_stats()", {}),
        "get_revenue_by_month": ("get_revenue_by_month()", {}),
        # Revision 0005: eu's primary streams to its replica, so there is a row.
        "elearn_replication_state": ("elearn_replication_state()", {}),
        "get_course_gradebook": ("get_course_gradebook(:c)", {"c": course.id}),
        # Revision 0009: the review and the lesson above paid points (0012's functions).
        "get_points_leaders_all": ("get_points_leaders_all(NULL, 10)", {}),
        "get_points_leaders_since": ("get_points_leaders_since(NULL, NULL, NULL, 10)", {}),
    }
    ours = {
        r[0]
        for r in rows(
            db,
            EU,
            "SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace"
            " AND p.proretset",
        )
    }
    assert ours == set(calls), "every set-returning function must be exercised here"
    for name, (call, params) in calls.items():
        found = rows(db, EU, f"SELECT * FROM {call}", **params)
        assert found, f"{name} returned no row"
    # And the declared column types are the columns' own: text only for text columns.
    declared = rows(
        db,
        EU,
        "SELECT p.proname, a.name, a.type FROM pg_proc p,"
        " LATERAL unnest(p.proargnames, p.proargmodes, p.proallargtypes::regtype[])"
        " AS a(name, mode, type)"
        " WHERE p.pronamespace = 'public'::regnamespace AND p.proretset AND a.mode = 't'"
        " AND a.type = 'text'::regtype",
    )
    assert {(r[0], r[1]) for r in declared} == {
        ("get_user_by_email", "bio"),
        ("get_course_details", "description"),
        # pg_stat_replication's own text columns.
        ("elearn_replication_state", "application_name"),
        ("elearn_replication_state", "state"),
        ("elearn_replication_state", "sync_state"),
        # first_name || ' ' || last_name: a computed text, not a narrowed column.
        ("get_course_gradebook", "learner"),
    }


def uuid_of(value: object) -> Any:
    return ids.as_uuid(str(value))


def test_regression_rating_trigger_takes_deleted_reviews_out_of_the_partials(
    db: Database,
) -> None:
    course = make_course(db)
    reviews = [
        scalar(
            db,
            EU,
            "SELECT upsert_course_review(NULL, :e, :r)",
            e=enroll(db, make_user(db), course.id),
            r=rating,
        )
        for rating in (5, 1)
    ]
    rows(db, EU, "SELECT delete_course_review(:r)", r=reviews[0])
    row = stats(db, EU, course.id)
    assert (row.rating_sum, row.rating_count) == (1, 1)
    rows(db, EU, "SELECT delete_course_review(:r)", r=reviews[1])
    row = stats(db, EU, course.id)
    assert (row.rating_sum, row.rating_count) == (0, 0)


def test_regression_completion_reverts_when_a_lesson_is_reset(db: Database) -> None:
    course = make_course(db, layout=(2,))
    eid = enroll(db, make_user(db), course.id)
    for lesson in course.lessons:
        complete(db, eid, lesson)
    scalar(db, EU, "SELECT issue_certificate(:e, 'https://cert.example.org/r')", e=eid)
    assert stats(db, EU, course.id).completed_count == 1
    reset = one(db, EU, "SELECT * FROM reset_lesson_progress(:e, :l)", e=eid, l=course.lessons[1])
    assert tuple(reset) == (Decimal("50.00"), 1, 2, "active")
    row = enrollment(db, eid)
    assert (row.status, row.completed_at, row.certificate_url, row.certificate_issued_at) == (
        "active",
        None,
        None,
        None,
    )
    assert (stats(db, EU, course.id).active_count, stats(db, EU, course.id).completed_count) == (
        1,
        0,
    )
    with sqlstate("EL409", InvalidState):
        scalar(db, EU, "SELECT issue_certificate(:e, 'https://cert.example.org/r')", e=eid)
    assert tuple(complete(db, eid, course.lessons[1])) == (Decimal("100.00"), 2, 2, "completed")


def _enrolling_work(db: Database, lessons: int) -> tuple[int, int]:
    """Rows written by one enrollment into a course of ``lessons`` lessons, and progress rows."""
    course = make_course(db, layout=(lessons,))
    user = make_user(db)
    # The backend's not-yet-flushed counters may hold earlier transactions: take a difference.
    written = text(
        "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables"
    )
    with connection(db, EU) as conn:
        before = conn.execute(written).scalar_one()
        eid = conn.execute(
            text("SELECT enroll_user(NULL, :u, :c)"), {"u": user, "c": course.id}
        ).scalar_one()
        after = conn.execute(written).scalar_one()
    progress = scalar(
        db, EU, "SELECT count(*) FROM lesson_progress WHERE enrollment_id = :e", e=eid
    )
    return int(after) - int(before), int(progress)


def test_regression_enrolling_writes_no_progress_rows_whatever_the_course_size(
    db: Database,
) -> None:
    small_written, small_progress = _enrolling_work(db, 1)
    large_written, large_progress = _enrolling_work(db, 300)
    assert small_progress == large_progress == 0
    # The enrollment row and this shard's course_stats partial: nothing per lesson.
    assert small_written == large_written == 2


def test_regression_invoice_numbers_do_not_collide_within_one_second(db: Database) -> None:
    course, user = make_course(db, price=10), make_user(db)
    batch = [purchase(db, user, course.id) for _ in range(40)]
    numbers: list[str] = []
    with connection(db, EU) as conn:  # one transaction: one now(), the same second for all
        for tid in batch:
            invoice = conn.execute(
                text("SELECT complete_transaction(:t, :g)"), {"t": tid, "g": unique("gw-")}
            ).scalar_one()
            numbers.append(
                conn.execute(
                    text("SELECT invoice_number FROM invoices WHERE id = :i"), {"i": invoice}
                ).scalar_one()
            )
        assert (
            conn.execute(
                text(
                    "SELECT count(DISTINCT issued_on) FROM invoices WHERE transaction_id = ANY(:t)"
                ),
                {"t": batch},
            ).scalar()
            == 1
        )
    parallel = [purchase(db, user, course.id) for _ in range(20)]
    invoices = run_together(20, lambda i: pay(db, parallel[i]))
    numbers += [
        scalar(db, EU, "SELECT invoice_number FROM invoices WHERE id = :i", i=i) for i in invoices
    ]
    assert len(set(numbers)) == len(numbers) == 60
    assert all(re.fullmatch(r"INV-EU-\d{4}-\d{6,}", n) for n in numbers)


def test_regression_completing_a_payment_twice_makes_one_invoice(db: Database) -> None:
    tid = purchase(db, make_user(db), make_course(db, price=10).id)
    gateway = unique("gw-")
    first = pay(db, tid, gateway)
    assert pay(db, tid, gateway) == first
    with sqlstate("EL409", InvalidState):
        pay(db, tid, unique("gw-"))
    assert scalar(db, EU, "SELECT count(*) FROM invoices WHERE transaction_id = :t", t=tid) == 1


def test_regression_revenue_statistics_are_not_inflated_by_join_fan_out(fresh: Database) -> None:
    db = fresh
    instructor = ids.new_id(Region.EUROPE)
    course = make_course(db, instructor_id=instructor, price=10)
    learners = [make_user(db) for _ in range(3)]
    for user, rating in zip(learners, (5, 4, 3), strict=True):
        scalar(
            db,
            EU,
            "SELECT upsert_course_review(NULL, :e, :r)",
            e=enroll(db, user, course.id),
            r=rating,
        )
    paid = [purchase(db, user, course.id) for user in learners[:2]]
    for tid in paid:
        pay(db, tid)
    scalar(db, EU, "SELECT refund_transaction(:t)", t=paid[1])
    # What joining everything at once would report (the reference design's query).
    naive = scalar(
        db,
        EU,
        "SELECT sum(t.amount) FROM courses c JOIN enrollments e ON e.course_id = c.id"
        " JOIN course_reviews r ON r.course_id = c.id"
        " JOIN transactions t ON t.course_id = c.id AND t.status = 'completed'"
        " WHERE c.instructor_id = :i",
        i=instructor,
    )
    assert naive == Decimal("180.00")  # 3 enrollments x 3 reviews x (10 + 10 refund row)
    found = one(db, EU, "SELECT * FROM get_instructor_stats(:i)", i=instructor)
    assert tuple(found) == (1, 3, 3, 12, 3, Decimal("10.00"))
    assert one(db, EU, "SELECT revenue FROM get_platform_stats()")[0] == Decimal("10.00")
    monthly = rows(db, EU, "SELECT purchases, refunds, revenue FROM get_revenue_by_month()")
    assert [tuple(r) for r in monthly] == [(Decimal("20.00"), Decimal("10.00"), Decimal("10.00"))]
