"""Races with real threads: seats, drops, refunds -- and nothing left locked afterwards.

The headline races live beside the features they guard and are not repeated
here: 64 learners from three regions for 10 seats
(``tests/integration/api/test_learning.py``), 20 concurrent completions of one
payment (``api/test_payments.py``), 9 concurrent registrations of one email
from three regions (``api/test_users.py``). This module adds the races around
freeing a seat and refunding, and checks after each race that every shard
primary is back to rest: no lock waits, no prepared transaction, no lock held
by a prepared transaction, no application session idle inside a transaction.

Lock order (docs/reliability.md): an enrollment or a drop locks the learner's
rows first (enrollment row, the course's per-shard statistics row on the
learner's shard), the course's seat-ledger row on its home shard last; two-phase
participants are prepared in sorted shard order and the coordinator commits
last. No transaction waits for a lock while holding the seat row, so no cycle
can form; ``lock_timeout`` is the backstop for anything PostgreSQL cannot see.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TypeVar

import pytest
from sqlalchemy import func, select

from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.errors import (
    AlreadyEnrolled,
    CourseFull,
    DuplicateEmail,
    ElearnDataError,
    InvalidState,
)
from elearn_data.models import CourseSeats, Enrollment, Invoice, Transaction
from elearn_data.sharding.merge import sum_over_shards
from tests.integration.api.helpers import published_course, register
from tests.integration.reliability.drills import assert_at_rest

pytestmark = pytest.mark.timeout(120)

T = TypeVar("T")


def race(n: int, action: Callable[[int], T]) -> list[T | ElearnDataError]:
    """Run ``action(i)`` for i in 0..n-1 in n threads released together."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T | ElearnDataError:
        barrier.wait(timeout=30)
        try:
            return action(i)
        except ElearnDataError as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def kinds(results: list[object]) -> Counter[str]:
    return Counter("ok" if not isinstance(r, Exception) else type(r).__name__ for r in results)


def seats_taken(db: Database, course: uuid.UUID) -> int:
    home = db.router.home_shard_of(course)
    with db.writer(home) as uow:
        return int(
            uow.execute(
                select(CourseSeats.taken).where(CourseSeats.course_id == course), shard=home
            ).scalar_one()
        )


def live_enrollments(db: Database, course: uuid.UUID) -> int:
    stmt = select(func.count()).where(
        Enrollment.course_id == course, Enrollment.status != "dropped"
    )
    with db.writer() as uow:
        return int(sum_over_shards(uow, stmt))


def test_drops_racing_enrollments_never_overbook_and_seats_match_enrollments(
    clean: Database, cluster: LocalCluster
) -> None:
    course, _ = published_course(clean, instructor_region="oceania", max_enrollments=6)
    regions = ["europe", "north_america", "asia", "africa", "south_america", "oceania"]
    holders = [register(clean, regions[i % 6]) for i in range(6)]
    held = [clean.enrollments.enroll(user, course) for user in holders]
    newcomers = [register(clean, regions[i % 6]) for i in range(12)]
    assert seats_taken(clean, course) == 6

    def act(i: int) -> object:
        if i < len(held):
            clean.enrollments.drop(held[i])
            return "dropped"
        clean.enrollments.enroll(newcomers[i - len(held)], course)
        return "enrolled"

    results = race(len(held) + len(newcomers), act)
    outcome = kinds(results)
    assert outcome.get("CourseFull", 0) + outcome["ok"] == len(results), outcome
    assert sum(1 for r in results if r == "dropped") == 6
    enrolled = sum(1 for r in results if r == "enrolled")
    assert 0 <= enrolled <= 6
    assert seats_taken(clean, course) == live_enrollments(clean, course) == enrolled
    assert clean.catalog.get_course(course).enrollment_count == enrolled
    assert_at_rest(cluster)


@pytest.mark.parametrize("learner_region", ["asia", "europe"])  # same shard as the ledger, or not
def test_one_learner_dropping_and_re_enrolling_at_once_keeps_one_seat_per_live_enrollment(
    clean: Database, cluster: LocalCluster, learner_region: str
) -> None:
    course, _ = published_course(clean, instructor_region="asia", max_enrollments=3)
    learner = register(clean, learner_region)
    for _round in range(8):
        enrollment = clean.enrollments.enroll(learner, course)

        def act(i: int, e: uuid.UUID = enrollment) -> object:
            if i == 0:
                return clean.enrollments.drop(e)
            return clean.enrollments.enroll(learner, course)

        results = race(2, act)
        assert results[0] is None, results  # the drop always succeeds
        # The enrollment either saw the old one still live, or came after the drop.
        assert isinstance(results[1], uuid.UUID | AlreadyEnrolled), results
        live = [e for e in clean.enrollments.for_user(learner) if e.status != "dropped"]
        assert len(live) <= 1
        assert seats_taken(clean, course) == live_enrollments(clean, course) == len(live)
        for e in live:
            clean.enrollments.drop(e.id)
    assert seats_taken(clean, course) == 0
    assert_at_rest(cluster)


def test_one_enrollment_dropped_by_eight_threads_is_dropped_and_freed_once(
    clean: Database, cluster: LocalCluster
) -> None:
    course, _ = published_course(clean, instructor_region="north_america", max_enrollments=2)
    enrollment = clean.enrollments.enroll(register(clean, "europe"), course)
    other = clean.enrollments.enroll(register(clean, "asia"), course)
    results = race(8, lambda _: clean.enrollments.drop(enrollment))
    assert kinds(results) == {"ok": 1, "InvalidState": 7}
    assert seats_taken(clean, course) == 1  # the other learner's seat is still taken
    assert clean.enrollments.get(other).status == "active"
    assert_at_rest(cluster)


def test_sixteen_concurrent_refunds_of_one_payment_make_exactly_one_refund(
    clean: Database, cluster: LocalCluster
) -> None:
    course, _ = published_course(clean, price=Decimal("30.00"))
    user = register(clean, "south_america")
    tx = clean.payments.create_transaction(user, course)
    clean.payments.complete(tx, gateway_transaction_id="gw-refund-race")
    results = race(16, lambda _: clean.payments.refund(tx))
    outcome = kinds(results)
    assert outcome == {"ok": 1, "InvalidState": 15}, outcome
    refund_id = next(r for r in results if isinstance(r, uuid.UUID))
    history = clean.payments.history(user)
    refunds = [t for t in history if t.type == "refund"]
    assert [(t.id, t.refund_of, t.amount) for t in refunds] == [(refund_id, tx, Decimal("30.00"))]
    assert clean.payments.get(tx).status == "refunded"
    with clean.writer() as uow:
        voided = sum_over_shards(
            uow,
            select(func.count()).where(Invoice.transaction_id == tx, Invoice.status == "void"),
        )
        refund_rows = sum_over_shards(uow, select(func.count()).where(Transaction.refund_of == tx))
    assert (voided, refund_rows) == (1, 1)
    assert_at_rest(cluster)


def test_completion_racing_refunds_never_refunds_an_uncompleted_payment(
    clean: Database, cluster: LocalCluster
) -> None:
    course, _ = published_course(clean, price=Decimal("12.00"))
    user = register(clean, "africa")
    tx = clean.payments.create_transaction(user, course)

    def act(i: int) -> object:
        if i == 0:
            return clean.payments.complete(tx, gateway_transaction_id="gw-complete-vs-refund")
        return clean.payments.refund(tx)

    results = race(6, act)
    assert isinstance(results[0], uuid.UUID), results[0]  # completion always succeeds
    refunds = [r for r in results[1:] if isinstance(r, uuid.UUID)]
    assert len(refunds) <= 1
    assert all(isinstance(r, uuid.UUID | InvalidState) for r in results[1:])
    status = clean.payments.get(tx).status
    assert status == ("refunded" if refunds else "completed")
    assert_at_rest(cluster)


def test_a_mixed_storm_across_regions_leaves_every_shard_at_rest(
    clean: Database, cluster: LocalCluster
) -> None:
    """Enrollments, drops, completions, refunds and duplicate registrations, all at once."""
    course_a, lessons_a = published_course(clean, instructor_region="europe", max_enrollments=5)
    course_b, _ = published_course(clean, instructor_region="asia", max_enrollments=5)
    regions = ["north_america", "europe", "asia", "africa", "oceania", "south_america"]
    learners = [register(clean, regions[i % 6]) for i in range(12)]
    enrolled = [clean.enrollments.enroll(learners[i], course_a) for i in range(4)]
    txs = [clean.payments.create_transaction(learners[i], course_b) for i in range(3)]
    clean.payments.complete(txs[0], gateway_transaction_id="gw-storm-0")
    email = f"storm-{uuid.uuid4().hex[:8]}@example.org"

    def act(i: int) -> object:
        match i % 8:
            case 0:
                return clean.enrollments.enroll(learners[4 + i // 8], course_a)
            case 1:
                return clean.enrollments.enroll(learners[i // 8], course_b)
            case 2:
                return clean.enrollments.drop(enrolled[(i // 8) % len(enrolled)])
            case 3:
                return clean.enrollments.complete_lesson(enrolled[0], lessons_a[i // 8 % 3])
            case 4:
                return clean.payments.complete(txs[1], gateway_transaction_id="gw-storm-1")
            case 5:
                return clean.payments.refund(txs[0])
            case 6:
                return register(clean, regions[i // 8 % 6], email=email)
            case _:
                return clean.reviews.add(enrolled[1], 1 + i // 8 % 5)

    results = race(32, act)
    unexpected = [
        r
        for r in results
        if isinstance(r, ElearnDataError)
        and not isinstance(r, CourseFull | AlreadyEnrolled | InvalidState | DuplicateEmail)
    ]
    assert unexpected == []
    assert sum(1 for i, r in enumerate(results) if i % 8 == 6 and isinstance(r, uuid.UUID)) == 1
    for course in (course_a, course_b):
        assert seats_taken(clean, course) == live_enrollments(clean, course) <= 5
    assert_at_rest(cluster)
