"""The global top N cannot miss a course whose enrollments are spread over shards."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from elearn_data.analytics import Analytics, threshold_top_n
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


def test_a_course_second_on_every_shard_is_found_although_no_shard_ranks_it_first(
    clean: Database, cluster: LocalCluster
) -> None:
    db = clean
    courses = {
        name: published_course(db, title=name)[0]
        for name in ("na_star", "eu_star", "apac_star", "everywhere", "nobody")
    }
    for region, counts in LAYOUT.items():
        for name, learners in counts.items():
            for _ in range(learners):
                db.enrollments.enroll(register(db, region), courses[name])

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


# ------------------------------------------------------- the algorithm itself


def brute_force(shards: Sequence[Mapping[int, int]], n: int) -> list[tuple[int, int]]:
    totals: dict[int, int] = {}
    for counts in shards:
        for key, count in counts.items():
            totals[key] = totals.get(key, 0) + count
    ranked = sorted(((k, t) for k, t in totals.items() if t > 0), key=lambda i: (-i[1], i[0]))
    return ranked[:n]


def run_tput(shards: Sequence[Mapping[int, int]], n: int) -> tuple[list[tuple[int, int]], int]:
    names = [f"s{i}" for i in range(len(shards))]
    fetched = 0

    def local_top(limit: int) -> dict[str, list[tuple[int, int]]]:
        return {
            name: sorted(counts.items(), key=lambda i: (-i[1], i[0]))[:limit]
            for name, counts in zip(names, shards, strict=True)
        }

    def above(threshold: int) -> dict[str, list[int]]:
        return {
            name: [k for k, c in counts.items() if c >= threshold]
            for name, counts in zip(names, shards, strict=True)
        }

    def exact(keys: list[int]) -> dict[str, dict[int, int]]:
        nonlocal fetched
        fetched = len(keys)
        return {
            name: {k: counts[k] for k in keys if k in counts}
            for name, counts in zip(names, shards, strict=True)
        }

    result = threshold_top_n(n, len(shards), local_top, above, exact)
    assert result.threshold == max(1, math.ceil(result.lower_bound / len(shards)))
    return result.ranked, fetched


@settings(max_examples=300, deadline=None)
@given(
    shards=st.lists(
        st.dictionaries(st.integers(0, 30), st.integers(0, 12), max_size=25),
        min_size=1,
        max_size=5,
    ),
    n=st.integers(1, 12),
)
def test_the_threshold_algorithm_always_equals_the_brute_force_top_n(
    shards: list[dict[int, int]], n: int
) -> None:
    ranked, _ = run_tput(shards, n)
    assert ranked == brute_force(shards, n)


def test_the_threshold_algorithm_fetches_few_candidates_when_counts_are_skewed() -> None:
    # 3 shards, 1000 courses with a long tail: the candidate set stays small.
    shards = [{k: max(0, 200 - k * (s + 1)) for k in range(1000)} for s in range(3)]
    ranked, fetched = run_tput(shards, 10)
    assert ranked == brute_force(shards, 10)
    assert fetched < 40


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
