"""The canned analytics computed by DuckDB give exactly the fan-out's frames.

``Analytics(canned="duckdb")`` reads every shard through ``db.analytics.sql``'s
engine; ``canned="fanout"`` through the per-shard fan-out; ``"auto"`` (the
default) uses DuckDB only for the analytics measured faster on it
(``on_duckdb.ON_DUCKDB``) and only with analyst credentials. Whatever the
engine: the same columns, dtypes, order, values (``Decimal('0')`` is not
``Decimal('0.00')`` here) and errors, and a write through the same
``connect()`` object is seen by the next call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from elearn_data import ids
from elearn_data.analytics import Analytics, on_duckdb
from elearn_data.analytics.on_duckdb import exact_form
from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings
from elearn_data.database import Database
from elearn_data.errors import ConfigurationError, InvalidInput, NotFound
from elearn_data.regions import Region
from tests.integration.analytics.world import World
from tests.integration.api.helpers import register
from tests.integration.observe import recording

Call = Callable[[Analytics], pd.DataFrame]


@pytest.fixture
def engines(db: Database) -> Iterator[tuple[Analytics, Analytics]]:
    duck, fan = Analytics(db, canned="duckdb"), Analytics(db, canned="fanout")
    try:
        yield duck, fan
    finally:
        duck.close()
        fan.close()


def _calls(world: World) -> dict[str, Call]:
    today = datetime.now(UTC).date()
    calls: dict[str, Call] = {
        "platform_stats": lambda a: a.platform_stats(),
        "enrollments_by_region": lambda a: a.enrollments_by_region(),
        "revenue_by_month": lambda a: a.revenue_by_month(),
        "revenue_by_month(range)": lambda a: a.revenue_by_month(today - timedelta(days=45), today),
        "revenue_by_month(from)": lambda a: a.revenue_by_month(today - timedelta(days=20)),
        "revenue_by_month(one day)": lambda a: a.revenue_by_month(today, today),
    }
    for name, course in world.courses.items():
        calls[f"course_funnel({name})"] = lambda a, c=course: a.course_funnel(c)
    for name, instructor in world.instructors.items():
        calls[f"instructor_stats({name})"] = lambda a, i=instructor: a.instructor_stats(i)
    return calls


def test_every_analytic_duckdb_computes_is_exactly_the_fan_out_s_frame(
    world: World, engines: tuple[Analytics, Analytics]
) -> None:
    duck, fan = engines
    calls = _calls(world)
    assert {name.split("(")[0] for name in calls} == set(on_duckdb.SUPPORTED)
    for name, call in calls.items():
        mine, theirs = call(duck), call(fan)
        assert exact_form(mine) == exact_form(theirs), name
        assert set(mine.attrs["nodes"]) == set(theirs.attrs["nodes"]) == {"na", "eu", "apac"}
        assert all("/replica@" in label for label in mine.attrs["nodes"].values()), name


def test_errors_are_the_same_on_duckdb(world: World, engines: tuple[Analytics, Analytics]) -> None:
    student = world.learners["eu1"]
    for analytics in engines:
        with pytest.raises(NotFound):
            analytics.course_funnel(ids.new_reference_id(Region.EUROPE))
        with pytest.raises(NotFound):
            analytics.instructor_stats(ids.new_id(Region.ASIA))
        with pytest.raises(InvalidInput, match="not an instructor"):
            analytics.instructor_stats(student)
        with pytest.raises(InvalidInput, match="after"):
            analytics.revenue_by_month(date(2024, 2, 1), date(2024, 1, 1))


def test_a_write_through_the_same_object_is_seen_by_the_next_duckdb_call(
    db: Database, world: World, engines: tuple[Analytics, Analytics]
) -> None:
    duck, _ = engines
    for region in ("oceania", "africa"):
        before = duck.platform_stats().set_index("shard")
        register(db, region)
        after = duck.platform_stats().set_index("shard")
        shard = db.router.shard_of_region(Region(region))
        assert int(after.loc[shard, "users"]) == int(before.loc[shard, "users"]) + 1
        assert int(after.loc["all", "users"]) == int(before.loc["all", "users"]) + 1


def test_auto_uses_duckdb_where_switched_and_the_fan_out_without_analyst_credentials(
    migrated: Settings,
    db: Database,
    cluster: LocalCluster,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fanned_out(analytics: Analytics) -> bool:
        with recording(db, cluster) as seen:
            frame = analytics.enrollments_by_region()
        assert list(frame["region"]) == [r.value for r in Region]
        return any("from enrollments e join users" in sql.lower() for _, _, sql in seen.seen)

    fan = Analytics(db, canned="fanout")
    assert fanned_out(fan)
    fan.close()
    # Whatever the measurement chose: with every analytic switched, auto reads DuckDB.
    monkeypatch.setattr(on_duckdb, "ON_DUCKDB", frozenset(on_duckdb.SUPPORTED))
    auto = Analytics(db)
    try:
        assert not fanned_out(auto)
    finally:
        auto.close()
    bare = migrated.model_copy(update={"analyst_password": None, "recover_on_connect": False})
    with Database(bare) as plain:
        assert not plain.analytics.engine.configured
        for name in on_duckdb.SUPPORTED:
            assert not plain.analytics._on_duckdb(name), name
        frame = plain.analytics.enrollments_by_region()
        assert list(frame["region"]) == [r.value for r in Region]
        forced = Analytics(plain, canned="duckdb")
        with pytest.raises(ConfigurationError, match="ELEARN_ANALYST_PASSWORD"):
            forced.platform_stats()
        forced.close()


def test_an_unknown_engine_is_invalid_input(db: Database) -> None:
    with pytest.raises(InvalidInput, match="canned"):
        Analytics(db, canned="spark")
