"""One rule for a global average: the catalog's course rating and analytics agree."""

from __future__ import annotations

import uuid
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from elearn_data.aggregates import average
from elearn_data.analytics import service
from elearn_data.repositories.catalog import Partials

# Per-shard partials of one course: (sum of ratings, number of ratings).
shard_partials = st.lists(
    st.integers(min_value=0, max_value=50).flatmap(
        lambda count: st.tuples(st.integers(min_value=count, max_value=5 * count), st.just(count))
    ),
    min_size=1,
    max_size=4,
)


def test_average_rounds_half_up_to_two_places() -> None:
    assert average(1, 8) == Decimal("0.13")  # 0.125 rounds up, not to even
    assert average(5, 8) == Decimal("0.63")
    assert average(10, 3) == Decimal("3.33")
    assert average(11, 3) == Decimal("3.67")
    assert average(Decimal("7.5"), 2) == Decimal("3.75")
    assert average(0, 0) is None
    assert average(5, None) is None


def test_analytics_uses_the_same_average() -> None:
    assert service.average is average


@given(shard_partials)
def test_course_rating_is_the_global_average_analytics_reports(
    partials: list[tuple[int, int]],
) -> None:
    course = uuid.uuid4()
    merged = Partials()
    for rating_sum, rating_count in partials:
        merged.add(course, rating_sum, rating_count, 0)
    total = sum(s for s, _ in partials)
    count = sum(c for _, c in partials)
    assert merged.rating(course) == average(total, count)
    if count:
        expected = (Decimal(total) / Decimal(count)).quantize(Decimal("0.01"), "ROUND_HALF_UP")
        assert merged.rating(course) == expected
    else:
        assert merged.rating(course) is None


def test_a_course_without_partials_has_no_rating() -> None:
    assert Partials().rating(uuid.uuid4()) is None
