"""Triggers: updated_at, course_stats partials, enrollment progress, lesson counts, status guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import InvalidState
from elearn_data.models import Base
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
    owner_rows,
    pay,
    purchase,
    rows,
    scalar,
    sqlstate,
    stats,
)

PAST = datetime(2025, 1, 1, tzinfo=UTC)


def test_every_table_with_updated_at_has_an_updated_at_trigger(db: Database) -> None:
    wanted = {t.name for t in Base.metadata.sorted_tables if "updated_at" in t.c}
    found = {
        r[0]
        for r in rows(
            db,
            EU,
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE NOT t.tgisinternal AND t.tgname = 'trg_' || c.relname || '_updated_at'",
        )
    }
    assert found == wanted
    assert len(wanted) == 20  # 14 of revision 0003, 4 of 0008 (assessments), 2 of 0009


def test_updated_at_is_stamped_on_update_unless_the_statement_sets_it(db: Database) -> None:
    user = make_user(db)
    rows(db, EU, "UPDATE users SET updated_at = :at WHERE id = :u", at=PAST, u=user)
    assert scalar(db, EU, "SELECT updated_at FROM users WHERE id = :u", u=user) == PAST
    with connection(db, EU) as conn:
        conn.execute(text("UPDATE users SET first_name = 'Grace' WHERE id = :u"), {"u": user})
        now = conn.execute(text("SELECT now()")).scalar()
        stamped = conn.execute(text("SELECT updated_at FROM users WHERE id = :u"), {"u": user})
        assert stamped.scalar() == now
    # A profile (another table, same trigger function) too.
    rows(db, EU, "UPDATE user_profiles SET updated_at = :at WHERE user_id = :u", at=PAST, u=user)
    rows(db, EU, "UPDATE user_profiles SET city = 'Paris' WHERE user_id = :u", u=user)
    assert scalar(db, EU, "SELECT updated_at FROM user_profiles WHERE user_id = :u", u=user) > PAST


def test_keep_updated_at_setting_keeps_an_explicit_time_equal_to_the_old_one(
    db: Database,
) -> None:
    user = make_user(db)
    rows(db, EU, "UPDATE users SET updated_at = :at WHERE id = :u", at=PAST, u=user)
    with connection(db, EU) as conn:
        conn.execute(text("SET LOCAL elearn.keep_updated_at = on"))
        conn.execute(
            text("UPDATE users SET last_name = 'X', updated_at = :at WHERE id = :u"),
            {"at": PAST, "u": user},
        )
    assert scalar(db, EU, "SELECT updated_at FROM users WHERE id = :u", u=user) == PAST


def test_a_lesson_count_change_alone_leaves_the_course_updated_at(db: Database) -> None:
    course = make_course(db, at=PAST, layout=(1,))
    lesson = ids.new_reference_id()
    rows(
        db,
        EU,
        "INSERT INTO course_lessons (id, module_id, course_id, title, lesson_order, lesson_type)"
        " VALUES (:l, :m, :c, 'Extra', 2, 'quiz')",
        l=lesson,
        m=course.modules[0],
        c=course.id,
    )
    row = one(db, EU, "SELECT lesson_count, updated_at FROM courses WHERE id = :c", c=course.id)
    assert tuple(row) == (2, PAST)
    rows(db, EU, "UPDATE courses SET title = 'Renamed' WHERE id = :c", c=course.id)
    assert scalar(db, EU, "SELECT updated_at FROM courses WHERE id = :c", c=course.id) > PAST


def test_a_new_course_gets_a_zero_course_stats_row_on_every_shard_it_is_written_to(
    db: Database,
) -> None:
    course = make_course(db, db.router.shards, publish=False)
    for shard in db.router.shards:
        row = stats(db, shard, course.id)
        assert (row.enrollment_count, row.rating_sum, row.rating_count) == (0, 0, 0)


def test_rating_partials_follow_review_insert_update_and_delete(db: Database) -> None:
    course = make_course(db)
    first, second = (enroll(db, make_user(db), course.id) for _ in range(2))
    a = scalar(db, EU, "SELECT upsert_course_review(NULL, :e, 5)", e=first)
    scalar(db, EU, "SELECT upsert_course_review(NULL, :e, 3)", e=second)
    assert (stats(db, EU, course.id).rating_sum, stats(db, EU, course.id).rating_count) == (8, 2)
    rows(db, EU, "UPDATE course_reviews SET rating = 1 WHERE id = :r", r=a)
    assert (stats(db, EU, course.id).rating_sum, stats(db, EU, course.id).rating_count) == (4, 2)
    rows(db, EU, "DELETE FROM course_reviews WHERE id = :r", r=a)
    assert (stats(db, EU, course.id).rating_sum, stats(db, EU, course.id).rating_count) == (3, 1)


def test_enrollment_counts_follow_inserts_status_changes_and_deletes(db: Database) -> None:
    course = make_course(db, layout=(1,))
    users = [make_user(db) for _ in range(3)]
    e1, e2, _ = (enroll(db, u, course.id) for u in users)

    def counts() -> tuple[int, int, int, int]:
        row = stats(db, EU, course.id)
        return (row.enrollment_count, row.active_count, row.completed_count, row.dropped_count)

    assert counts() == (3, 3, 0, 0)
    complete(db, e1, course.lessons[0])
    assert counts() == (3, 2, 1, 0)
    scalar(db, EU, "SELECT drop_enrollment(:e)", e=e2)
    assert counts() == (2, 1, 1, 1)
    rows(db, EU, "DELETE FROM users WHERE id = :u", u=users[2])  # cascades to e3
    assert counts() == (1, 0, 1, 1)
    rows(db, EU, "DELETE FROM enrollments WHERE id = :e", e=e2)
    assert counts() == (1, 0, 1, 0)


def test_lesson_count_follows_multi_row_lesson_inserts_and_deletes(db: Database) -> None:
    course = make_course(db, layout=(1,))
    other = make_course(db, layout=(1,))
    new = [ids.new_reference_id() for _ in range(3)]
    rows(
        db,
        EU,
        "INSERT INTO course_lessons (id, module_id, course_id, title, lesson_order, lesson_type)"
        " VALUES (:a, :m, :c, 'a', 2, 'video'), (:b, :m, :c, 'b', 3, 'video'),"
        " (:x, :om, :oc, 'x', 2, 'video')",
        a=new[0],
        b=new[1],
        x=new[2],
        m=course.modules[0],
        c=course.id,
        om=other.modules[0],
        oc=other.id,
    )
    count = "SELECT lesson_count FROM courses WHERE id = :c"
    assert (scalar(db, EU, count, c=course.id), scalar(db, EU, count, c=other.id)) == (3, 2)
    rows(db, EU, "DELETE FROM course_lessons WHERE id IN (:a, :x)", a=new[0], x=new[2])
    assert (scalar(db, EU, count, c=course.id), scalar(db, EU, count, c=other.id)) == (2, 1)
    rows(db, EU, "DELETE FROM course_modules WHERE id = :m", m=course.modules[0])  # cascade
    assert scalar(db, EU, count, c=course.id) == 0


def test_adding_a_lesson_recomputes_progress_but_keeps_the_status(db: Database) -> None:
    course = make_course(db, layout=(2,))
    done, half = (enroll(db, make_user(db), course.id) for _ in range(2))
    for lesson in course.lessons:
        complete(db, done, lesson)
    complete(db, half, course.lessons[0])
    rows(
        db,
        EU,
        "INSERT INTO course_lessons (id, module_id, course_id, title, lesson_order, lesson_type)"
        " VALUES (:l, :m, :c, 'New', 3, 'reading')",
        l=ids.new_reference_id(),
        m=course.modules[0],
        c=course.id,
    )
    assert (enrollment(db, done).progress_percent, enrollment(db, done).status) == (
        Decimal("66.67"),
        "completed",
    )
    assert (enrollment(db, half).progress_percent, enrollment(db, half).status) == (
        Decimal("33.33"),
        "active",
    )


def test_deleting_a_completed_lesson_shortens_the_course_without_reverting_completion(
    db: Database,
) -> None:
    course = make_course(db, layout=(2,))
    eid = enroll(db, make_user(db), course.id)
    for lesson in course.lessons:
        complete(db, eid, lesson)
    rows(db, EU, "DELETE FROM course_lessons WHERE id = :l", l=course.lessons[1])
    row = enrollment(db, eid)
    assert (row.completed_lessons, row.progress_percent, row.status) == (
        1,
        Decimal("100.00"),
        "completed",
    )


def test_deleting_a_completed_progress_row_reverts_completion(db: Database) -> None:
    course = make_course(db, layout=(1,))
    eid = enroll(db, make_user(db), course.id)
    complete(db, eid, course.lessons[0])
    rows(db, EU, "DELETE FROM lesson_progress WHERE enrollment_id = :e", e=eid)
    row = enrollment(db, eid)
    assert (row.completed_lessons, row.progress_percent, row.status, row.completed_at) == (
        0,
        Decimal("0.00"),
        "active",
        None,
    )


def test_progress_trigger_never_touches_a_dropped_enrollment(db: Database) -> None:
    course = make_course(db, layout=(2,))
    eid = enroll(db, make_user(db), course.id)
    complete(db, eid, course.lessons[0])
    scalar(db, EU, "SELECT drop_enrollment(:e)", e=eid)
    rows(
        db,
        EU,
        "INSERT INTO lesson_progress (enrollment_id, lesson_id, completed, completed_at)"
        " VALUES (:e, :l, true, now())",
        e=eid,
        l=course.lessons[1],
    )
    row = enrollment(db, eid)
    assert (row.completed_lessons, row.progress_percent, row.status) == (
        1,
        Decimal("50.00"),
        "dropped",
    )


def test_rebuild_course_stats_recreates_lost_partials(db: Database) -> None:
    course = make_course(db)
    eid = enroll(db, make_user(db), course.id)
    scalar(db, EU, "SELECT upsert_course_review(NULL, :e, 4)", e=eid)
    rows(db, EU, "DELETE FROM course_stats WHERE course_id = :c", c=course.id)
    assert scalar(db, EU, "SELECT rebuild_course_stats(:c)", c=course.id) == 1
    row = stats(db, EU, course.id)
    assert (row.enrollment_count, row.active_count, row.rating_sum, row.rating_count) == (
        1,
        1,
        4,
        1,
    )


def test_a_missing_partials_row_is_rebuilt_by_the_next_change(db: Database) -> None:
    course = make_course(db)
    enroll(db, make_user(db), course.id)
    rows(db, EU, "DELETE FROM course_stats WHERE course_id = :c", c=course.id)
    enroll(db, make_user(db), course.id)
    row = stats(db, EU, course.id)
    assert (row.enrollment_count, row.active_count) == (2, 2)


@pytest.mark.parametrize(
    ("start", "target", "allowed"),
    [
        ("pending", "completed", True),
        ("pending", "failed", True),
        ("completed", "refunded", True),
        ("completed", "completed", True),
        ("failed", "completed", False),
        ("failed", "pending", False),
        ("completed", "pending", False),
        ("completed", "failed", False),
        ("refunded", "completed", False),
        ("pending", "refunded", False),
    ],
)
def test_transaction_status_guard_allows_only_forward_transitions(
    db: Database, start: str, target: str, allowed: bool
) -> None:
    user = make_user(db)
    tid = purchase(db, user, make_course(db, price=10).id)
    if start in ("completed", "refunded"):
        pay(db, tid)
    if start == "refunded":
        scalar(db, EU, "SELECT refund_transaction(:t)", t=tid)
    if start == "failed":
        rows(db, EU, "SELECT fail_transaction(:t)", t=tid)
    update = (
        "UPDATE transactions SET status = :s, completed_at = coalesce(completed_at, now()),"
        " gateway_transaction_id = coalesce(gateway_transaction_id, 'gw-' || id) WHERE id = :t"
    )
    # As the owner: the application role may not UPDATE money rows (revision 0005).
    if allowed:
        owner_rows(db, EU, update, s=target, t=tid)
        assert scalar(db, EU, "SELECT status FROM transactions WHERE id = :t", t=tid) == target
    else:
        with sqlstate("EL409", InvalidState, match=f"cannot go from {start} to {target}"):
            owner_rows(db, EU, update, s=target, t=tid)


def test_a_refund_transaction_can_never_become_refunded(db: Database) -> None:
    tid = purchase(db, make_user(db), make_course(db, price=10).id)
    pay(db, tid)
    refund = scalar(db, EU, "SELECT refund_transaction(:t)", t=tid)
    with sqlstate("EL409", InvalidState, match="a refund"):
        owner_rows(db, EU, "UPDATE transactions SET status = 'refunded' WHERE id = :t", t=refund)


def test_enrollment_row_updated_at_moves_with_progress(db: Database) -> None:
    course = make_course(db, layout=(2,))
    eid = enroll(db, make_user(db), course.id)
    rows(db, EU, "UPDATE enrollments SET updated_at = :at WHERE id = :e", at=PAST, e=eid)
    complete(db, eid, course.lessons[0])
    assert enrollment(db, eid).updated_at > PAST + timedelta(days=1)
    assert ids.owner_region(eid) is Region.EUROPE
