"""The bench's fair-share bound: when jobs sharing CPUs equally all finish."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from elearn_data.bench.measure import fair_share_makespan


def test_three_jobs_on_two_cpus_share_until_the_short_ones_finish() -> None:
    # 7.3 and 7.6 and 10.2 ms alone: all three at 2/3 of a CPU until 7.3 ms of
    # work (10.95 ms), two at full speed for 0.3 ms, the last alone for 2.6 ms.
    assert fair_share_makespan([10.2, 7.6, 7.3], 2) == pytest.approx(13.85)


def test_as_many_cpus_as_jobs_is_the_longest_job() -> None:
    assert fair_share_makespan([3.0, 9.0, 4.0], 3) == pytest.approx(9.0)


def test_one_cpu_is_the_total() -> None:
    assert fair_share_makespan([3.0, 9.0, 4.0], 1) == pytest.approx(16.0)


@given(
    works=st.lists(st.floats(0.01, 100.0), min_size=1, max_size=8),
    cpus=st.integers(1, 8),
)
def test_fair_sharing_is_never_faster_than_an_ideal_packing(works: list[float], cpus: int) -> None:
    ideal = max(*works, sum(works) / cpus)
    assert fair_share_makespan(works, cpus) >= ideal * (1 - 1e-9)
    assert fair_share_makespan(works, cpus) <= sum(works) * (1 + 1e-9)


def test_no_cpu_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        fair_share_makespan([1.0], 0)
