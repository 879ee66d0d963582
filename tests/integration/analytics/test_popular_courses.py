"""The global top N cannot miss a course whose enrollments are spread over shards.

The merge itself (``threshold_top_n``) is tested against brute force in
``tests/unit/test_top_n.py``; here it runs over real shards.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text

from elearn_data.analytics import Analytics
from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from tests.integration.analytics import truth
from tests.integration.api.helpers import published_course, register

# learners per (shard's region, course): each course is first on one shard only,
# while "everywhere" is second on every shard and first overall.
LAYOUT = {
    "north_america": {"na_star": 3, "everywhere": 2},
    "europe": {"eu_star": 3, "everywhere": 2},
    "asia": {"apac_star": 3, "everywhere": 2},
}


def adversarial(db: Database) -> dict[str, uuid.UUID]:
    """Publish the courses of LAYOUT (and "nobody", without learners) and enroll its learners."""
    courses = {
        name: published_course(db, title=name)[0]
        for name in ("na_star", "eu_star", "apac_star", "everywhere", "nobody")
    }
    for region, counts in LAYOUT.items():
        for name, learners in counts.items():
            for _ in range(learners):
                db.enrollments.enroll(register(db, region), courses[name])
    return courses


def test_a_course_second_on_every_shard_is_found_although_no_shard_ranks_it_first(
    clean: Database, cluster: LocalCluster
) -> None:
    db = clean
    courses = adversarial(db)

    # Per-shard top 1 lists merged naively miss the winner (the data is adversarial).
    per_shard: list[tuple[uuid.UUID, int]] = []
    for shard in db.router.shards:
        with db.reader(shard) as uow:
            rows = uow.execute(
                text("SELECT course_id, enrollment_count FROM get_popular_courses(1)"), shard=shard
            ).all()
        per_shard.extend((r[0], r[1]) for r in rows)
    naive = sorted(per_shard, key=lambda item: item[1], reverse=True)[:1]
    assert naive[0][0] != courses["everywhere"]

    frame = Analytics(db).popular_courses(1)
    assert list(frame["course_id"]) == [courses["everywhere"]]
    assert list(frame["enrollments"]) == [6]
    assert frame.attrs["lower_bound"] == 3 and frame.attrs["threshold"] == 1

    raw = truth.read_raw(cluster)
    for limit in range(1, 7):
        got = Analytics(db).popular_courses(limit)
        expected = truth.popular(raw, limit)
        assert [
            (r["course_id"], r["enrollments"], r["rank"]) for r in got.to_dict(orient="records")
        ] == [(r["course_id"], r["enrollments"], r["rank"]) for r in expected], limit
    # Ties (3 each) go to the lower id, as in every shard's own list.
    second_to_fourth = list(Analytics(db).popular_courses(4)["course_id"])[1:]
    assert second_to_fourth == sorted(courses[n] for n in ("na_star", "eu_star", "apac_star"))


def test_catalog_popular_ranks_as_the_analytics_layer_does_with_views_from_one_snapshot(
    clean: Database,
) -> None:
    db = clean
    courses = adversarial(db)
    assert [c.id for c in db.catalog.popular(1)] == [courses["everywhere"]]
    for limit in range(1, 7):
        frame = Analytics(db).popular_courses(limit)
        views = db.catalog.popular(limit)
        assert [v.id for v in views] == list(frame["course_id"]), limit
        assert [v.enrollment_count for v in views] == list(frame["enrollments"]), limit
    # Fewer courses with enrollments than asked: the one without any comes last.
    assert db.catalog.popular(6)[-1].id == courses["nobody"]
    assert db.catalog.popular(6)[-1].enrollment_count == 0


def test_analytics_of_an_empty_platform_are_zeros_and_empty_frames(clean: Database) -> None:
    analytics = Analytics(clean)
    platform = analytics.platform_stats()
    assert list(platform["shard"]) == ["apac", "eu", "na", "all"]
    assert (platform.drop(columns="shard") == 0).all().all()
    assert analytics.popular_courses().empty
    revenue = analytics.revenue_by_month()
    assert revenue.empty
    assert list(revenue.columns) == [
        "month",
        "currency",
        "purchases",
        "refunds",
        "revenue",
        "transactions",
    ]
    regions = analytics.enrollments_by_region()
    assert len(regions) == 6 and regions["enrollments"].sum() == 0
