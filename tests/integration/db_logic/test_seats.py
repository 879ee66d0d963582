"""Seat ledger functions on the course's home shard: reserve, release, capacity."""

from __future__ import annotations

import pytest

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import CourseFull, InvalidInput, InvalidState, NotFound
from tests.integration.db_logic.helpers import (
    EU,
    make_course,
    one,
    pgcode_of,
    rows,
    run_together,
    scalar,
    sqlstate,
)


def _ledger(db: Database, capacity: int | None) -> object:
    return make_course(db, max_enrollments=capacity, seat_ledger=True).id


def _taken(db: Database, course_id: object) -> int:
    return int(scalar(db, EU, "SELECT taken FROM course_seats WHERE course_id = :c", c=course_id))


def test_reserve_seat_counts_up_to_capacity_then_the_course_is_full(db: Database) -> None:
    course = _ledger(db, 2)
    assert scalar(db, EU, "SELECT reserve_seat(:c)", c=course) == 1
    assert scalar(db, EU, "SELECT reserve_seat(:c)", c=course) == 2
    with sqlstate("EL410", CourseFull, match="is full: 2 of 2 seats taken"):
        scalar(db, EU, "SELECT reserve_seat(:c)", c=course)
    assert _taken(db, course) == 2


def test_unlimited_capacity_never_fills(db: Database) -> None:
    course = _ledger(db, None)
    for expected in range(1, 6):
        assert scalar(db, EU, "SELECT reserve_seat(:c)", c=course) == expected


def test_seat_functions_without_a_ledger_row_are_not_found(db: Database) -> None:
    course = make_course(db, max_enrollments=5).id  # no ledger on this shard
    for call in ("reserve_seat(:c)", "release_seat(:c)", "set_course_capacity(:c, 9)"):
        with sqlstate("EL404", NotFound, match="has no seat ledger on this shard"):
            rows(db, EU, f"SELECT {call}", c=course)
    with sqlstate("EL404", NotFound):
        rows(db, EU, "SELECT reserve_seat(:c)", c=ids.new_reference_id())


def test_release_seat_gives_a_seat_back_and_never_goes_below_zero(db: Database) -> None:
    course = _ledger(db, 1)
    scalar(db, EU, "SELECT reserve_seat(:c)", c=course)
    assert scalar(db, EU, "SELECT release_seat(:c)", c=course) == 0
    assert scalar(db, EU, "SELECT release_seat(:c)", c=course) == 0
    assert scalar(db, EU, "SELECT reserve_seat(:c)", c=course) == 1


def test_set_course_capacity_moves_the_limit_but_not_below_the_seats_taken(db: Database) -> None:
    course = _ledger(db, 3)
    for _ in range(3):
        scalar(db, EU, "SELECT reserve_seat(:c)", c=course)
    with sqlstate("EL400", InvalidInput, match="capacity 2 is below the 3 seats already taken"):
        rows(db, EU, "SELECT set_course_capacity(:c, 2)", c=course)
    rows(db, EU, "SELECT set_course_capacity(:c, 4)", c=course)
    assert scalar(db, EU, "SELECT reserve_seat(:c)", c=course) == 4
    rows(db, EU, "SELECT set_course_capacity(:c, NULL)", c=course)
    assert (
        one(db, EU, "SELECT capacity FROM course_seats WHERE course_id = :c", c=course)[0] is None
    )
    assert scalar(db, EU, "SELECT reserve_seat(:c)", c=course) == 5


@pytest.mark.parametrize("capacity", [0, -3])
def test_set_course_capacity_must_be_positive(db: Database, capacity: int) -> None:
    with sqlstate("EL400", InvalidInput, match=f"capacity must be positive: {capacity}"):
        rows(db, EU, "SELECT set_course_capacity(:c, :n)", c=_ledger(db, 3), n=capacity)


def test_thirty_concurrent_reservations_of_ten_seats_let_exactly_ten_through(
    db: Database,
) -> None:
    course = _ledger(db, 10)
    results = run_together(30, lambda _: scalar(db, EU, "SELECT reserve_seat(:c)", c=course))
    taken = sorted(r for r in results if isinstance(r, int))
    assert taken == list(range(1, 11))
    assert [pgcode_of(r) for r in results if not isinstance(r, int)] == ["EL410"] * 20
    assert _taken(db, course) == 10


def test_set_course_capacity_refuses_a_capacity_for_a_course_that_had_none(db: Database) -> None:
    # The ledger of an unlimited course took no seats: it cannot know the live
    # enrollments of every shard, so only db.catalog.set_capacity may do this.
    course = _ledger(db, None)
    with sqlstate("EL409", InvalidState, match="counts the live enrollments of every shard"):
        rows(db, EU, "SELECT set_course_capacity(:c, 5)", c=course)
    assert (
        one(db, EU, "SELECT capacity FROM course_seats WHERE course_id = :c", c=course)[0] is None
    )
