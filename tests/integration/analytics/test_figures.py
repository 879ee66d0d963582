"""Every analytics figure equals the truth computed from the raw rows of every shard."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from elearn_data import ids
from elearn_data.analytics import Analytics
from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.errors import InvalidInput, NotFound
from elearn_data.regions import Region
from tests.integration.analytics import truth
from tests.integration.analytics.world import World
from tests.integration.observe import recording


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def test_the_world_spans_every_region_shard_and_payment_state(world: World, raw: truth.Raw) -> None:
    # The data the other tests compare against really has what they need.
    assert {u["region"] for u in raw.all("users")} == {r.value for r in Region}
    assert all(len(t["enrollments"]) > 0 for t in raw.shards.values())
    statuses = {(t["type"], t["status"]) for t in raw.all("transactions")}
    assert statuses >= {
        ("purchase", "completed"),
        ("purchase", "failed"),
        ("purchase", "refunded"),
        ("purchase", "pending"),
        ("refund", "completed"),
    }
    months = {t["completed_at"].month for t in raw.all("transactions") if t["completed_at"]}
    assert len(months) >= 3
    cross_region = [
        e
        for e in raw.all("enrollments")
        if ids.decode(e["course_id"]).region != ids.decode(e["user_id"]).region
    ]
    assert cross_region


def test_platform_stats_has_a_row_per_shard_and_an_all_row_equal_to_the_truth(
    world: World, raw: truth.Raw, analytics: Analytics
) -> None:
    frame = analytics.platform_stats()
    expected = truth.platform(raw)

    assert list(frame["shard"]) == ["apac", "eu", "na", "all"]
    got = {row.pop("shard"): row for row in records(frame)}
    assert got == expected
    # Catalog counts are not tripled in the merged row.
    assert got["all"]["courses"] == 5 and got["all"]["published_courses"] == 4
    assert got["all"]["revenue"] > 0


def test_platform_stats_revenue_is_completed_purchases_minus_refunds(
    world: World, raw: truth.Raw, analytics: Analytics
) -> None:
    all_row = analytics.platform_stats().set_index("shard").loc["all"]
    purchases = sum(
        t["amount"]
        for t in raw.all("transactions")
        if t["type"] == "purchase" and t["status"] in {"completed", "refunded"}
    )
    refunds = sum(t["amount"] for t in raw.all("transactions") if t["type"] == "refund")
    assert all_row["revenue"] == purchases - refunds
    assert isinstance(all_row["revenue"], Decimal)


@pytest.mark.parametrize("teacher", ["eu", "na", "ap"])
def test_instructor_stats_equal_the_truth_for_every_instructor(
    world: World, raw: truth.Raw, analytics: Analytics, teacher: str
) -> None:
    instructor_id = world.instructors[teacher]
    frame = analytics.instructor_stats(instructor_id)
    assert len(frame) == 1
    assert records(frame)[0] == truth.instructor(raw, instructor_id)


def test_instructor_average_rating_is_a_sum_of_sums_not_an_average_of_averages(
    world: World, analytics: Analytics
) -> None:
    # The eu instructor teaches py (rated 5, 5 on eu; 2 on na; 3, 5 on apac) and art
    # (no reviews): 20 / 5 = 4.00, while the shards' averages 5, 2, 4 would give 3.67.
    row = records(analytics.instructor_stats(world.instructors["eu"]))[0]
    assert (row["rating_sum"], row["rating_count"]) == (20, 5)
    assert row["average_rating"] == Decimal("4.00")


def test_instructor_stats_of_an_unknown_id_raise_not_found(analytics: Analytics) -> None:
    with pytest.raises(NotFound):
        analytics.instructor_stats(uuid.uuid4())
    with pytest.raises(NotFound, match="not found"):
        analytics.instructor_stats(ids.new_id(Region.AFRICA))


def test_instructor_stats_of_a_learner_raise_invalid_input(
    world: World, analytics: Analytics
) -> None:
    learner = next(iter(world.learners.values()))
    with pytest.raises(InvalidInput, match=rf"user {learner} is a student, not an instructor"):
        analytics.instructor_stats(learner)


def test_popular_courses_equal_the_truth_and_fill_with_unenrolled_courses(
    world: World, raw: truth.Raw, analytics: Analytics
) -> None:
    for limit in (1, 2, 3, 4, 10):
        frame = analytics.popular_courses(limit)
        assert records(frame) == truth.popular(raw, limit), limit
    # Only published courses, the unenrolled one last.
    frame = analytics.popular_courses(10)
    assert len(frame) == 4
    assert frame.iloc[-1]["course_id"] == world.courses["art"]
    assert frame.iloc[-1]["enrollments"] == 0


def test_popular_courses_reject_a_limit_out_of_range(analytics: Analytics) -> None:
    for bad in (0, -1, 1001, "ten"):
        with pytest.raises(InvalidInput):
            analytics.popular_courses(bad)  # type: ignore[arg-type]


def test_revenue_by_month_equals_the_truth_per_utc_month_and_currency(
    world: World, raw: truth.Raw, analytics: Analytics
) -> None:
    frame = analytics.revenue_by_month()
    expected = truth.revenue_by_month(raw)
    got = records(frame)
    for row in got:
        row["month"] = row["month"].date()
    assert got == expected
    months = {(r["month"], r["currency"]) for r in got}
    # 2026-08-31 23:30 in UTC-5 is September in UTC; EUR is kept apart from USD.
    assert (date(2026, 9, 1), "USD") in months
    assert (date(2026, 10, 1), "EUR") in months
    assert frame["month"].dtype.kind == "M"


def test_revenue_by_month_honours_inclusive_start_and_end_days(
    world: World, raw: truth.Raw, analytics: Analytics
) -> None:
    for start, end in (
        (date(2026, 9, 1), date(2026, 10, 31)),
        (date(2026, 9, 1), None),
        (None, date(2026, 9, 10)),
        (date(2026, 9, 10), date(2026, 9, 10)),
    ):
        got = records(analytics.revenue_by_month(start, end))
        for row in got:
            row["month"] = row["month"].date()
        assert got == truth.revenue_by_month(raw, start, end), (start, end)


def test_revenue_by_month_rejects_a_start_after_the_end(analytics: Analytics) -> None:
    with pytest.raises(InvalidInput, match="after"):
        analytics.revenue_by_month(date(2026, 10, 1), date(2026, 9, 1))
    with pytest.raises(InvalidInput):
        analytics.revenue_by_month("last week")  # type: ignore[arg-type]


def test_enrollments_by_region_equal_the_truth_for_all_six_regions(
    world: World, raw: truth.Raw, analytics: Analytics, db: Database
) -> None:
    frame = analytics.enrollments_by_region()
    expected = truth.by_region(raw)
    assert list(frame["region"]) == [r.value for r in Region]
    for row in records(frame):
        region = row.pop("region")
        assert row.pop("shard") == db.router.shard_of_region(region)
        assert row == expected[region], region


@pytest.mark.parametrize("course", ["py", "sql", "ml", "art"])
def test_course_funnel_equals_the_truth_computed_from_progress_rows(
    world: World, raw: truth.Raw, analytics: Analytics, course: str
) -> None:
    frame = analytics.course_funnel(world.courses[course])
    expected = truth.funnel(raw, world.courses[course])
    assert list(frame["stage"]) == ["enrolled", "started", "halfway", "completed", "reviewed"]
    assert dict(zip(frame["stage"], frame["learners"], strict=True)) == expected
    enrolled = expected["enrolled"]
    for stage, share in zip(frame["stage"], frame["share"], strict=True):
        assert share == pytest.approx(expected[stage] / enrolled if enrolled else 0.0)


def test_course_funnel_of_an_unknown_course_raises_not_found(analytics: Analytics) -> None:
    with pytest.raises(NotFound):
        analytics.course_funnel(uuid.uuid4())
    with pytest.raises(NotFound):
        analytics.course_funnel(ids.new_reference_id(Region.EUROPE))
    with pytest.raises(NotFound):
        analytics.course_funnel(ids.new_id(Region.EUROPE))  # a learner id, not a course


def test_every_analytics_call_reads_replicas_of_all_shards_and_pulls_aggregates_only(
    world: World, db: Database, cluster: LocalCluster, analytics: Analytics
) -> None:
    calls = {
        "platform_stats": analytics.platform_stats,
        "instructor_stats": lambda: analytics.instructor_stats(world.instructors["eu"]),
        "popular_courses": lambda: analytics.popular_courses(3),
        "revenue_by_month": analytics.revenue_by_month,
        "enrollments_by_region": analytics.enrollments_by_region,
        "course_funnel": lambda: analytics.course_funnel(world.courses["py"]),
    }
    for name, call in calls.items():
        with recording(db, cluster) as seen:
            frame = call()
        assert seen.shards() == {"na", "eu", "apac"}, name
        assert seen.roles() == {"replica"}, name
        assert set(frame.attrs["nodes"]) == {"na", "eu", "apac"}, name
        assert all("/replica@" in label for label in frame.attrs["nodes"].values()), name
        # No statement reads raw learner rows: each one aggregates or calls a function.
        for _, _, sql in seen.seen:
            lowered = sql.lower()
            assert (
                "count(" in lowered
                or "get_" in lowered
                or "course_stats" in lowered
                or lowered.startswith(
                    (
                        "begin isolation",
                        "rollback",
                        "select pg_wal_lsn_diff",
                        "select exists",
                        # The replica's lag check (revision 0005's owner function,
                        # after asking whether the node is still a standby).
                        "select replay_lsn, pending_bytes, receiver_status",
                        "select pg_is_in_recovery()",
                    )
                )
                or "from users where id" in lowered
                or "from courses c where" in lowered
            ), sql
