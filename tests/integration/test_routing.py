"""Routing proven by observation: which server ran each statement."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, update

from elearn_data import ids
from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.models import Course, User
from elearn_data.regions import Region
from elearn_data.sharding.merge import sum_over_shards
from elearn_data.sharding.session import RoutingError
from tests.integration.factories import add_user
from tests.integration.observe import recording


@pytest.fixture
def people(clean: Database) -> dict[Region, uuid.UUID]:
    return {region: add_user(clean, region) for region in Region}


def test_get_by_id_touches_exactly_one_node(
    clean: Database, cluster: LocalCluster, people: dict[Region, uuid.UUID]
) -> None:
    for region, user_id in people.items():
        with recording(clean, cluster) as seen, clean.reader() as uow:
            user = uow.session.get(User, user_id)
            assert user is not None and user.region == region.value
        assert len(seen.nodes()) == 1
        assert seen.shards() == {clean.router.shard_of_region(region)}


def test_region_filtered_query_runs_on_one_shard(
    clean: Database, cluster: LocalCluster, people: dict[Region, uuid.UUID]
) -> None:
    with recording(clean, cluster) as seen, clean.reader() as uow:
        rows = uow.session.scalars(select(User).where(User.region == "africa")).all()
    assert [r.id for r in rows] == [people[Region.AFRICA]]
    assert seen.shards() == {"eu"}


def test_region_in_list_runs_on_the_shards_it_names(
    clean: Database, cluster: LocalCluster, people: dict[Region, uuid.UUID]
) -> None:
    regions = ["asia", "oceania", "europe"]
    with recording(clean, cluster) as seen, clean.reader() as uow:
        rows = uow.session.scalars(select(User).where(User.region.in_(regions))).all()
    assert len(rows) == 3
    assert seen.shards() == {"apac", "eu"}


def test_ids_in_the_criteria_narrow_the_statement(
    clean: Database, cluster: LocalCluster, people: dict[Region, uuid.UUID]
) -> None:
    wanted = [people[Region.NORTH_AMERICA], people[Region.OCEANIA]]
    with recording(clean, cluster) as seen, clean.reader() as uow:
        stmt = select(User).where(User.id.in_(wanted), User.status == "active")
        rows = uow.session.scalars(stmt).all()
    assert {r.id for r in rows} == set(wanted)
    assert seen.shards() == {"na", "apac"}


def test_unfiltered_query_runs_on_every_shard(
    clean: Database, cluster: LocalCluster, people: dict[Region, uuid.UUID]
) -> None:
    with recording(clean, cluster) as seen, clean.reader() as uow:
        rows = uow.session.scalars(select(User)).all()
    assert len(rows) == 6
    assert seen.shards() == {"na", "eu", "apac"}


def test_or_of_regions_narrows_to_their_union(
    clean: Database, cluster: LocalCluster, people: dict[Region, uuid.UUID]
) -> None:
    with recording(clean, cluster) as seen, clean.reader() as uow:
        stmt = select(User).where((User.region == "asia") | (User.region == "south_america"))
        assert len(uow.session.scalars(stmt).all()) == 2
    assert seen.shards() == {"apac", "na"}


def test_no_write_ever_reaches_a_replica(clean: Database, cluster: LocalCluster) -> None:
    with recording(clean, cluster) as seen:
        user_id = add_user(clean, Region.ASIA)
        with clean.writer(Region.ASIA) as uow:
            uow.session.execute(update(User).where(User.id == user_id).values(first_name="Grace"))
        with clean.writer() as uow:
            regions = ["north_america", "europe", "asia"]
            uow.session.execute(
                update(User).where(User.region.in_(regions)).values(status="active")
            )
    assert seen.roles() == {"primary"}
    assert seen.shards() == {"na", "eu", "apac"}


def test_reference_tables_are_read_on_the_local_shard_only(
    clean: Database, cluster: LocalCluster
) -> None:
    with recording(clean, cluster) as seen, clean.reader("eu") as uow:
        uow.session.scalars(select(Course).where(Course.status == "published")).all()
    assert seen.shards() == {"eu"}


def test_new_catalog_rows_are_refused_by_the_orm(clean: Database) -> None:
    with pytest.raises(RoutingError, match=r"db\.catalog"), clean.writer() as uow:
        uow.session.add(
            Course(
                id=ids.new_reference_id(Region.EUROPE),
                code="X-1",
                title="t",
                instructor_id=uuid.uuid4(),
            )
        )
        uow.session.flush()


def test_foreign_id_finds_nothing(clean: Database, people: dict[Region, uuid.UUID]) -> None:
    with clean.reader() as uow:
        assert uow.session.get(User, uuid.uuid4()) is None
        assert uow.session.scalars(select(User).where(User.id == uuid.uuid4())).all() == []


def test_count_over_shards_is_merged_and_equals_the_merge_helper(
    clean: Database, people: dict[Region, uuid.UUID]
) -> None:
    stmt = select(func.count()).select_from(User)
    with clean.reader() as uow:
        counted = uow.session.scalar(stmt)
        merged = sum_over_shards(uow, stmt)
    assert counted == 6
    assert merged == 6
