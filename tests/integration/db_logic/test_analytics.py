"""Analytics partials: instructor stats, platform stats, revenue by month (no fan-out)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import InvalidInput
from elearn_data.regions import Region
from tests.integration.db_logic.helpers import (
    EU,
    complete,
    enroll,
    make_course,
    make_user,
    one,
    owner_rows,
    pay,
    purchase,
    rows,
    scalar,
    sqlstate,
)

REVIEW = "SELECT upsert_course_review(NULL, :e, :r)"


def test_get_instructor_stats_gives_this_shards_partials_that_sum_over_shards(
    db: Database,
) -> None:
    shards = db.router.shards
    instructor = ids.new_id(Region.EUROPE)
    course = make_course(db, shards, instructor_id=instructor, price=20, layout=(1,))
    make_course(db, shards, instructor_id=instructor, publish=False)
    eu_a, eu_b = make_user(db), make_user(db, Region.AFRICA)
    na = make_user(db, Region.NORTH_AMERICA)
    e1, e2, e3 = (enroll(db, u, course.id) for u in (eu_a, eu_b, na))
    complete(db, e2, course.lessons[0])  # completed: not an active student any more
    scalar(db, EU, REVIEW, e=e1, r=5)
    scalar(db, "na", REVIEW, e=e3, r=2)
    pay(db, purchase(db, eu_a, course.id))
    pay(db, purchase(db, na, course.id))

    eu = one(db, EU, "SELECT * FROM get_instructor_stats(:i)", i=instructor)
    assert tuple(eu) == (2, 2, 1, 5, 1, Decimal("20.00"))
    na_stats = one(db, "na", "SELECT * FROM get_instructor_stats(:i)", i=instructor)
    assert tuple(na_stats) == (2, 1, 1, 2, 1, Decimal("20.00"))
    apac = one(db, "apac", "SELECT * FROM get_instructor_stats(:i)", i=instructor)
    assert tuple(apac) == (2, 0, 0, 0, 0, Decimal("0"))


def test_get_instructor_stats_of_an_unknown_instructor_is_all_zero(db: Database) -> None:
    found = one(db, EU, "SELECT * FROM get_instructor_stats(:i)", i=ids.new_id(Region.ASIA))
    assert tuple(found) == (0, 0, 0, 0, 0, Decimal("0"))


def test_get_platform_stats_counts_this_shards_rows(fresh: Database) -> None:
    db = fresh
    course = make_course(db, price=10, layout=(1,))
    make_course(db, publish=False)
    make_user(db, role="instructor")
    learners = [make_user(db) for _ in range(3)]
    e1, _, e3 = (enroll(db, u, course.id) for u in learners)
    complete(db, e1, course.lessons[0])
    scalar(db, EU, "SELECT drop_enrollment(:e)", e=e3)
    paid = purchase(db, learners[0], course.id)
    pay(db, paid)
    refunded = purchase(db, learners[1], course.id)
    pay(db, refunded)
    scalar(db, EU, "SELECT refund_transaction(:t)", t=refunded)
    purchase(db, learners[2], course.id)  # pending: no revenue
    found = one(db, EU, "SELECT * FROM get_platform_stats()")
    assert tuple(found) == (4, 3, 1, 2, 1, 3, 1, 1, Decimal("10.00"))
    # Catalog counts are the same everywhere; learner counts are this shard's.
    assert tuple(one(db, "na", "SELECT * FROM get_platform_stats()")) == (
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        Decimal("0"),
    )


def test_get_revenue_by_month_groups_purchases_and_refunds_by_month_and_currency(
    fresh: Database,
) -> None:
    db = fresh
    user = make_user(db)
    usd = make_course(db, price=100)
    eur = make_course(db, price=40, currency="EUR")
    january, refunded_in_march, february_eur = (
        purchase(db, user, usd.id),
        purchase(db, user, usd.id),
        purchase(db, user, eur.id),
    )
    for tid in (january, refunded_in_march, february_eur):
        pay(db, tid)
    refund = scalar(db, EU, "SELECT refund_transaction(:t)", t=refunded_in_march)
    purchase(db, user, usd.id)  # pending: not revenue
    for tid, at in (
        (january, "2026-01-15 10:00+00"),
        (refunded_in_march, "2026-01-31 23:30+00"),
        (february_eur, "2026-02-01 00:10+00"),
        (refund, "2026-03-02 08:00+00"),
    ):
        owner_rows(db, EU, "UPDATE transactions SET completed_at = :at WHERE id = :t", at=at, t=tid)
    found = [tuple(r) for r in rows(db, EU, "SELECT * FROM get_revenue_by_month()")]
    assert found == [
        (date(2026, 1, 1), "USD", Decimal("200.00"), Decimal("0"), Decimal("200.00"), 2),
        (date(2026, 2, 1), "EUR", Decimal("40.00"), Decimal("0"), Decimal("40.00"), 1),
        (date(2026, 3, 1), "USD", Decimal("0"), Decimal("100.00"), Decimal("-100.00"), 1),
    ]
    window = rows(
        db,
        EU,
        "SELECT month FROM get_revenue_by_month(:s, :e)",
        s=date(2026, 2, 1),
        e=date(2026, 2, 28),
    )
    assert [r.month for r in window] == [date(2026, 2, 1)]
    january_only = rows(db, EU, "SELECT * FROM get_revenue_by_month(NULL, :e)", e=date(2026, 1, 31))
    assert [(r.month, r.transactions) for r in january_only] == [(date(2026, 1, 1), 2)]


def test_get_revenue_by_month_rejects_a_start_after_the_end(db: Database) -> None:
    with sqlstate("EL400", InvalidInput, match="start 2026-02-01 is after end 2026-01-01"):
        rows(db, EU, "SELECT * FROM get_revenue_by_month('2026-02-01', '2026-01-01')")
