"""Invariants that span shards are enforced on the whole platform, never per shard.

* A gateway charge id completes one purchase on the platform: reusing it from
  another region (another shard) or for another purchase of the same learner is
  ``InvalidState``, as ``complete`` documents, never ``Duplicate``.
* A capacity given to a course that had none counts the live enrollments of
  every shard (taken while it was unlimited, no seat was), refuses a limit
  below them, and later drops give back exactly the seats that are counted.
"""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text

from elearn_data.database import Database
from elearn_data.errors import CourseFull, InvalidInput, InvalidState, NotFound
from tests.integration.api.helpers import published_course, register

pytestmark = pytest.mark.timeout(120)


def _purchase(db: Database, region: str) -> tuple[uuid.UUID, uuid.UUID]:
    learner = register(db, region)
    course, _ = published_course(db, instructor_region="europe", price=Decimal("20.00"))
    return learner, db.payments.create_transaction(learner, course)


def _seats(db: Database, course: uuid.UUID) -> tuple[int | None, int]:
    home = db.router.home_shard_of(course)
    with db.writer(home) as uow:
        row = uow.execute(
            text("SELECT capacity, taken FROM course_seats WHERE course_id = :c"),
            {"c": course},
            shard=home,
        ).one()
    return row[0], int(row[1])


# ------------------------------------------------------------ gateway charge ids


def test_one_gateway_charge_completes_one_purchase_across_regions(clean: Database) -> None:
    _, in_na = _purchase(clean, "north_america")
    _, in_asia = _purchase(clean, "asia")
    assert clean.router.shard_of_owner(in_na) != clean.router.shard_of_owner(in_asia)
    gateway = f"ch_{uuid.uuid4().hex}"
    invoice = clean.payments.complete(in_na, gateway_transaction_id=gateway)
    with pytest.raises(InvalidState, match="already used by another transaction"):
        clean.payments.complete(in_asia, gateway_transaction_id=gateway)
    assert clean.payments.get(in_asia).status == "pending"
    with pytest.raises(NotFound):
        clean.payments.invoice(in_asia)
    # The same completion again is still idempotent.
    assert clean.payments.complete(in_na, gateway_transaction_id=gateway) == invoice


def test_a_gateway_charge_reused_on_the_same_shard_is_an_invalid_state(clean: Database) -> None:
    learner, first = _purchase(clean, "europe")
    course, _ = published_course(clean, instructor_region="asia", price=Decimal("5.00"))
    second = clean.payments.create_transaction(learner, course)
    gateway = f"ch_{uuid.uuid4().hex}"
    clean.payments.complete(first, gateway_transaction_id=gateway)
    with pytest.raises(InvalidState):
        clean.payments.complete(second, gateway_transaction_id=gateway)


def test_concurrent_completions_with_one_charge_in_two_regions_complete_exactly_one(
    clean: Database,
) -> None:
    purchases = [_purchase(clean, region)[1] for region in ("north_america", "oceania", "africa")]
    gateway = f"ch_{uuid.uuid4().hex}"
    barrier = threading.Barrier(len(purchases))
    outcomes: dict[uuid.UUID, str] = {}

    def complete(tid: uuid.UUID) -> None:
        barrier.wait()
        try:
            clean.payments.complete(tid, gateway_transaction_id=gateway)
            outcomes[tid] = "completed"
        except InvalidState:
            outcomes[tid] = "refused"

    threads = [threading.Thread(target=complete, args=(tid,)) for tid in purchases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes.values()) == ["completed", "refused", "refused"]
    statuses = sorted(clean.payments.get(tid).status for tid in purchases)
    assert statuses == ["completed", "pending", "pending"]


# ------------------------------------------------------------------- capacity


def test_a_capacity_given_to_an_unlimited_course_counts_the_enrollments_of_every_shard(
    clean: Database,
) -> None:
    course, _ = published_course(clean, instructor_region="europe")
    learners = [register(clean, r) for r in ("north_america", "asia", "europe")]
    enrollments = [clean.enrollments.enroll(learner, course) for learner in learners]
    clean.enrollments.drop(enrollments[2])  # a dropped enrollment holds no seat

    with pytest.raises(InvalidInput, match="below the 2 live enrollments"):
        clean.catalog.set_capacity(course, 1)
    assert clean.catalog.get_course(course).max_enrollments is None

    clean.catalog.set_capacity(course, 2)
    assert clean.catalog.get_course(course).max_enrollments == 2
    assert _seats(clean, course) == (2, 2)
    with pytest.raises(CourseFull):
        clean.enrollments.enroll(register(clean, "south_america"), course)

    # A drop of an enrollment made while the course was unlimited frees a real seat.
    clean.enrollments.drop(enrollments[0])
    assert _seats(clean, course) == (2, 1)
    clean.enrollments.enroll(register(clean, "oceania"), course)
    assert _seats(clean, course) == (2, 2)

    clean.catalog.set_capacity(course, None)
    assert clean.catalog.get_course(course).max_enrollments is None
    clean.enrollments.enroll(register(clean, "africa"), course)
    clean.catalog.set_capacity(course, 3)
    assert _seats(clean, course) == (3, 3)


def test_set_capacity_validates_its_input(clean: Database) -> None:
    course, _ = published_course(clean)
    with pytest.raises(InvalidInput):
        clean.catalog.set_capacity(course, 0)
    with pytest.raises(NotFound):
        clean.catalog.set_capacity(uuid.uuid4(), 5)


def test_enrollments_racing_a_new_capacity_never_exceed_it(clean: Database) -> None:
    course, _ = published_course(clean, instructor_region="asia")
    regions = ["north_america", "europe", "asia", "africa", "oceania", "south_america"]
    learners = [register(clean, regions[i % len(regions)]) for i in range(12)]
    for learner in learners[:3]:
        clean.enrollments.enroll(learner, course)
    barrier = threading.Barrier(len(learners) - 3 + 1)
    errors: list[BaseException] = []

    def enroll(learner: uuid.UUID) -> None:
        barrier.wait()
        try:
            clean.enrollments.enroll(learner, course)
        except CourseFull:
            pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    refused: list[InvalidInput] = []

    def cap() -> None:
        barrier.wait()
        try:
            clean.catalog.set_capacity(course, 6)
        except InvalidInput as exc:  # more than 6 were enrolled before the limit
            refused.append(exc)

    threads = [threading.Thread(target=enroll, args=(u,)) for u in learners[3:]]
    threads.append(threading.Thread(target=cap))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert errors == []
    live = sum(
        1
        for learner in learners
        for e in clean.enrollments.for_user(learner)
        if e.course_id == course and e.status != "dropped"
    )
    capacity, taken = _seats(clean, course)
    if refused:
        assert capacity is None and live > 6
    else:
        # Every live enrollment holds a seat, and there are no more than the capacity.
        assert capacity == 6
        assert taken == live <= 6
