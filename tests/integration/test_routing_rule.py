"""The one routing rule, proven by the server port that ran each statement.

Scoped units of work stay on their shard; global ones route by criteria; writes
go to their row's shard or are refused before anything is sent.
"""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, delete, event, func, insert, select, text, update

from elearn_data import errors, ids
from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.errors import CrossShardQuery, RoutingError
from elearn_data.models import Course, CourseStats, Enrollment, User
from elearn_data.regions import Region
from elearn_data.sharding.crossshard import pg_numeric_div
from tests.integration.factories import add_user
from tests.integration.observe import recording

SHARD_REGIONS = {"na": Region.NORTH_AMERICA, "eu": Region.EUROPE, "apac": Region.ASIA}


@pytest.fixture
def people(clean: Database) -> dict[str, list[uuid.UUID]]:
    """1 user on na, 2 on eu, 3 on apac."""
    return {
        shard: [add_user(clean, region) for _ in range(count)]
        for (shard, region), count in zip(SHARD_REGIONS.items(), (1, 2, 3), strict=True)
    }


def _user_row(region: Region, **extra: Any) -> dict[str, Any]:
    user_id = ids.new_id(region)
    return {
        "id": user_id,
        "email": f"rule-{uuid.uuid4().hex[:12]}@example.org",
        "password_hash": "x",
        "first_name": "Rule",
        "last_name": "Tester",
        "region": region.value,
        **extra,
    }


def _course(db: Database) -> uuid.UUID:
    instructor = add_user(db, Region.EUROPE, role="instructor")
    return db.catalog.create_course(
        code=f"R-{uuid.uuid4().hex[:6].upper()}", title="Routing", instructor_id=instructor
    )


# ------------------------------------------------------------------ scoping


def test_a_scoped_reader_counts_its_own_shard_only(
    clean: Database, cluster: LocalCluster, people: dict[str, list[uuid.UUID]]
) -> None:
    for shard, users in people.items():
        with recording(clean, cluster) as seen, clean.reader(shard) as uow:
            assert uow.session.scalar(select(func.count()).select_from(User)) == len(users)
            assert uow.execute(select(func.count()).select_from(User)).scalar() == len(users)
        assert seen.shards() == {shard}
    with clean.reader(Region.OCEANIA) as uow:  # a region names its shard
        assert uow.session.scalar(select(func.count()).select_from(User)) == 3


def test_a_scoped_unit_of_work_refuses_criteria_naming_another_shard(
    clean: Database, cluster: LocalCluster, people: dict[str, list[uuid.UUID]]
) -> None:
    apac_user = people["apac"][0]
    with recording(clean, cluster) as seen, clean.reader("eu") as uow:
        with pytest.raises(RoutingError, match=r"scoped to shard 'eu'.*apac"):
            uow.session.scalars(select(User).where(User.id == apac_user)).all()
        with pytest.raises(RoutingError, match="scoped to shard 'eu'"):
            uow.execute(select(User.email).where(User.region == "asia"))
        with pytest.raises(RoutingError, match="lives on shard 'apac'"):
            uow.session.get(User, apac_user)
    assert seen.seen == []


def test_a_scoped_writer_refuses_a_new_object_of_another_shard(clean: Database) -> None:
    with pytest.raises(RoutingError, match="belongs to shard 'apac'"), clean.writer("eu") as uow:
        uow.session.add(User(**_user_row(Region.ASIA)))
    with clean.reader() as uow:
        assert uow.session.scalar(select(func.count()).select_from(User)) == 0


def test_statements_the_router_cannot_read_need_a_shard_in_a_global_unit_of_work(
    clean: Database, cluster: LocalCluster
) -> None:
    with clean.reader() as uow:
        with pytest.raises(RoutingError, match="shard="):
            uow.execute(text("SELECT count(*) FROM users"))
        with pytest.raises(RoutingError, match="course_stats is per-shard"):
            uow.execute(select(CourseStats.course_id))
    with recording(clean, cluster) as seen, clean.reader("apac") as uow:
        assert uow.execute(text("SELECT count(*) FROM users")).scalar() == 0
        uow.execute(select(CourseStats.course_id)).all()
    assert seen.shards() == {"apac"}


# ------------------------------------------------------------ global reads


def test_a_global_reader_merges_order_and_limit_from_every_shard_in_parallel(
    clean: Database, cluster: LocalCluster, people: dict[str, list[uuid.UUID]]
) -> None:
    threads: set[str] = set()

    def note_thread(*args: Any) -> None:
        threads.add(threading.current_thread().name)

    engines = [node.engine for node in clean.cluster.engines.nodes()]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", note_thread)
    try:
        with recording(clean, cluster) as seen, clean.reader() as uow:
            stmt = select(User.id).order_by(User.id.desc()).limit(2).offset(1)
            got = uow.execute(stmt).scalars().all()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", note_thread)
    every = sorted((u for users in people.values() for u in users), reverse=True)
    assert got == every[1:3]
    assert seen.shards() == {"na", "eu", "apac"}
    # Each shard was asked for LIMIT + OFFSET rows and no OFFSET.
    statements = [sql for _, _, sql in seen.seen if "FROM users" in sql]
    assert len(statements) == 3
    assert all("LIMIT" in sql and "OFFSET" not in sql for sql in statements)
    # The shards were queried from more than one thread (a parallel fan-out).
    assert len(threads) > 1


def test_a_global_reader_routes_by_criteria(
    clean: Database, cluster: LocalCluster, people: dict[str, list[uuid.UUID]]
) -> None:
    wanted = [people["na"][0], people["apac"][1]]
    with recording(clean, cluster) as seen, clean.reader() as uow:
        stmt = select(User.id).where(User.id.in_(bindparam("ids", expanding=True)))
        got = uow.execute(stmt, {"ids": wanted}).scalars().all()
    assert sorted(got) == sorted(wanted)
    assert seen.shards() == {"na", "apac"}
    with recording(clean, cluster) as seen, clean.reader() as uow:
        assert uow.execute(select(func.count()).where(User.region == "europe")).scalar() == 2
    assert seen.shards() == {"eu"}


def test_catalog_reads_run_on_one_shard(clean: Database, cluster: LocalCluster) -> None:
    course = _course(clean)
    with recording(clean, cluster) as seen, clean.reader() as uow:
        assert uow.execute(select(func.count()).select_from(Course)).scalar() == 1
        assert uow.session.get(Course, course) is not None
    assert seen.shards() == {clean.router.catalog_shard}


def test_a_join_of_two_learners_rows_is_refused_and_a_colocated_one_is_merged(
    clean: Database, people: dict[str, list[uuid.UUID]]
) -> None:
    course = _course(clean)
    with clean.writer() as uow:
        uow.execute(
            insert(Enrollment),
            [
                {"id": ids.new_id(SHARD_REGIONS[shard]), "user_id": user, "course_id": course}
                for shard, users in people.items()
                for user in users
            ],
        )
    with clean.reader() as uow:
        colocated = (
            select(User.region, func.count())
            .join(Enrollment, Enrollment.user_id == User.id)
            .group_by(User.region)
            .order_by(User.region)
        )
        assert uow.execute(colocated).all() == [("asia", 3), ("europe", 2), ("north_america", 1)]
        other = Enrollment.__table__.alias("other")
        pairs = select(Enrollment.id, other.c.id).join(
            other, other.c.course_id == Enrollment.course_id
        )
        with pytest.raises(CrossShardQuery, match=r"db\.analytics\.sql"):
            uow.execute(pairs).all()


# ------------------------------------------------------------------- writes


def test_an_insert_goes_to_the_shard_of_its_row(clean: Database, cluster: LocalCluster) -> None:
    rows = [_user_row(Region.EUROPE), _user_row(Region.OCEANIA), _user_row(Region.AFRICA)]
    with recording(clean, cluster) as seen, clean.writer() as uow:
        uow.execute(insert(User).values(**rows[0]))
    assert {s for s, role, sql in seen.seen if "INSERT" in sql} == {"eu"}
    with recording(clean, cluster) as seen, clean.writer() as uow:
        uow.execute(insert(User), rows[1:])
    assert {s for s, role, sql in seen.seen if "INSERT" in sql} == {"apac", "eu"}
    orm_row = _user_row(Region.SOUTH_AMERICA)
    with recording(clean, cluster) as seen, clean.writer() as uow:
        uow.session.add(User(**orm_row))
    assert {s for s, role, sql in seen.seen if "INSERT" in sql} == {"na"}
    with clean.reader() as uow:
        regions = uow.execute(select(User.region).order_by(User.region)).scalars().all()
    assert regions == ["africa", "europe", "oceania", "south_america"]


def test_an_insert_that_names_no_shard_is_refused(clean: Database) -> None:
    with (
        pytest.raises(RoutingError, match="cannot place a row of enrollments"),
        clean.writer() as uow,
    ):
        uow.execute(insert(Enrollment).values(course_id=uuid.uuid4()))
    with pytest.raises(RoutingError, match="cannot place a row of users"), clean.writer() as uow:
        uow.execute(insert(User).values(id=uuid.uuid4(), email="x@example.org"))


def test_an_update_or_delete_that_does_not_narrow_is_refused_and_writes_nothing(
    clean: Database, cluster: LocalCluster, people: dict[str, list[uuid.UUID]]
) -> None:
    with recording(clean, cluster) as seen:
        with pytest.raises(CrossShardQuery, match="nothing was written"), clean.writer() as uow:
            uow.execute(update(User).values(first_name="Everyone"))
        with pytest.raises(CrossShardQuery, match="nothing was written"), clean.writer() as uow:
            uow.session.execute(delete(User).where(User.status == "active"))
    assert seen.seen == []
    with clean.reader() as uow:
        assert uow.execute(select(func.count()).where(User.first_name == "Everyone")).scalar() == 0
        assert uow.execute(select(func.count()).select_from(User)).scalar() == 6
    # Narrowed, it changes exactly the shards it names.
    with recording(clean, cluster) as seen, clean.writer() as uow:
        result = uow.execute(
            update(User)
            .where(User.id.in_([people["na"][0], people["eu"][0]]))
            .values(first_name="Two")
        )
        assert result.rowcount == 2
    assert {s for s, _, sql in seen.seen if "UPDATE" in sql} == {"na", "eu"}
    # A scoped writer changes its own shard only.
    with clean.writer("apac") as uow:
        assert uow.execute(update(User).values(first_name="Three")).rowcount == 3
    with clean.reader() as uow:
        names = uow.execute(
            select(User.first_name, func.count())
            .group_by(User.first_name)
            .order_by(User.first_name)
        ).all()
    assert names == [("Ada", 1), ("Three", 3), ("Two", 2)]


def test_catalog_rows_change_only_through_db_catalog(
    clean: Database, cluster: LocalCluster
) -> None:
    course = _course(clean)
    with recording(clean, cluster) as seen:
        with pytest.raises(RoutingError, match=r"db\.catalog"), clean.writer() as uow:
            uow.execute(update(Course).where(Course.id == course).values(title="One copy"))
        with pytest.raises(RoutingError, match=r"db\.catalog"), clean.writer() as uow:
            uow.execute(update(Course).values(title="One copy"), shard="eu")
        with pytest.raises(RoutingError, match=r"db\.catalog"), clean.writer("na") as uow:
            uow.session.get(Course, course).title = "One copy"  # type: ignore[union-attr]
            uow.session.flush()
        with pytest.raises(RoutingError, match=r"db\.catalog"), clean.writer() as uow:
            uow.session.delete(uow.session.get(Course, course))
    assert not [
        sql for _, _, sql in seen.seen if sql.lstrip().upper().startswith(("UPDATE", "DELETE"))
    ]
    for shard in clean.router.shards:
        with clean.reader(shard) as uow:
            assert (
                uow.execute(select(Course.title).where(Course.id == course)).scalar() == "Routing"
            )


def test_routing_error_is_one_class_exported_from_errors() -> None:
    from elearn_data.sharding import session  # noqa: PLC0415

    assert session.RoutingError is errors.RoutingError
    assert issubclass(errors.CrossShardQuery, errors.ElearnDataError)


# --------------------------------------------------------- numeric division


@settings(max_examples=200, deadline=None)
@given(
    dividend=st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False),
    divisor=st.integers(min_value=1, max_value=10**6),
)
def test_the_merged_average_divides_exactly_like_postgresql(
    db: Database, dividend: Decimal, divisor: int
) -> None:
    with db.reader("na") as uow:
        expected = uow.execute(
            text("SELECT CAST(:a AS numeric) / CAST(:b AS numeric)"),
            {"a": dividend, "b": divisor},
        ).scalar()
    got = pg_numeric_div(dividend, divisor)
    assert got == expected and str(got) == str(expected)
