"""The criteria rules of the router, as pure logic (no database)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from elearn_data import ids
from elearn_data.config import Settings
from elearn_data.models import Course, CourseSeats, EmailDirectoryEntry, Enrollment, User
from elearn_data.regions import Region
from elearn_data.sharding.routing import Router, statement_tables

URL = "postgresql://app@127.0.0.1:1/elearn"
router = Router(Settings(shards={s: {"primary": URL} for s in ("na", "eu", "apac")}))


def shards(stmt: object) -> set[str] | None:
    return router.shards_for_criteria(stmt.whereclause)  # type: ignore[attr-defined]


def test_region_equality_and_in_narrow() -> None:
    assert shards(select(User).where(User.region == "europe")) == {"eu"}
    assert shards(select(User).where(User.region.in_(["asia", "africa"]))) == {"apac", "eu"}


def test_owner_ids_narrow_in_learner_tables() -> None:
    learner = ids.new_id(Region.OCEANIA)
    assert shards(select(Enrollment).where(Enrollment.user_id == learner)) == {"apac"}
    assert shards(select(Enrollment).where(Enrollment.id == ids.new_id(Region.AFRICA))) == {"eu"}


def test_and_intersects_and_ignores_non_narrowing_terms() -> None:
    learner = ids.new_id(Region.EUROPE)
    stmt = select(User).where(User.id == learner, User.status == "active")
    assert shards(stmt) == {"eu"}
    contradictory = select(User).where(User.region == "asia", User.id == learner)
    assert shards(contradictory) == set()


def test_or_narrows_only_when_every_branch_does() -> None:
    assert shards(select(User).where((User.region == "asia") | (User.status == "x"))) is None
    stmt = select(User).where((User.region == "asia") | (User.region == "europe"))
    assert shards(stmt) == {"apac", "eu"}


def test_other_operators_and_columns_do_not_narrow() -> None:
    assert shards(select(User).where(User.region != "asia")) is None
    assert shards(select(User).where(User.email == "a@b.c")) is None
    assert shards(select(User)) is None


def test_catalog_ids_do_not_narrow_but_name_the_seat_ledger_home() -> None:
    course = ids.new_reference_id(Region.SOUTH_AMERICA)
    assert shards(select(Course).where(Course.id == course)) is None
    assert shards(select(CourseSeats).where(CourseSeats.course_id == course)) == {"na"}
    assert router.home_shard_of(course) == "na"


def test_directory_rows_are_placed_by_hash_over_every_shard() -> None:
    placed = {router.directory_shard(uuid.uuid4().bytes * 2) for _ in range(200)}
    assert placed == {"na", "eu", "apac"}
    digest = bytes(range(32))
    stmt = select(EmailDirectoryEntry).where(EmailDirectoryEntry.email_hash == digest)
    assert shards(stmt) == {router.directory_shard(digest)}


def test_ids_we_never_issued_narrow_to_nothing() -> None:
    assert shards(select(User).where(User.id == uuid.uuid4())) == set()


def test_what_a_statement_built_per_call_reads_is_found_by_its_shape() -> None:
    # Statements built per call (their values inline) share one entry per shape;
    # shapes that differ only in a table or a column keep their own.
    learner = ids.new_id(Region.EUROPE)
    for _ in range(3):
        user = ids.new_id(Region.ASIA)
        assert [t.name for t in statement_tables(select(User.id).where(User.id == user))] == [
            "users"
        ]
        enrollments = select(Enrollment.id).where(Enrollment.user_id == user)
        assert [t.name for t in statement_tables(enrollments)] == ["enrollments"]
        joined = (
            select(User.email)
            .join(Enrollment, Enrollment.user_id == User.id)
            .where(User.id == learner)
        )
        assert sorted(t.name for t in statement_tables(joined)) == ["enrollments", "users"]
    assert router.route(select(User.id).where(User.id == learner)) == ("eu",)
