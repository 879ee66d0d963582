"""The one top-N merge (``analytics.merge.threshold_top_n``): pure, checked against brute force.

``db.catalog.popular`` and ``db.analytics.popular_courses`` both rank with it;
here its rounds are callbacks over in-memory per-shard counts, so every case
(ties at the boundary, a key second everywhere, fewer keys than asked) is
compared with the obvious answer: sum every shard, sort, cut.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elearn_data.analytics.merge import TopN, threshold_top_n

Shards = Sequence[Mapping[int, int]]


def brute_force(shards: Shards, n: int) -> list[tuple[int, int]]:
    totals: dict[int, int] = {}
    for counts in shards:
        for key, count in counts.items():
            totals[key] = totals.get(key, 0) + count
    ranked = sorted(((k, t) for k, t in totals.items() if t > 0), key=lambda i: (-i[1], i[0]))
    return ranked[:n]


class Rounds:
    """The three rounds over in-memory shards, recording what each round was asked."""

    def __init__(self, shards: Shards, catalog: Sequence[int] = ()) -> None:
        self.shards = {f"s{i}": dict(counts) for i, counts in enumerate(shards)}
        self.catalog = sorted(catalog)
        self.calls: list[str] = []
        self.fetched = 0

    def local_top(self, limit: int) -> dict[str, list[tuple[int, int]]]:
        self.calls.append("local_top")
        return {
            name: sorted(counts.items(), key=lambda i: (-i[1], i[0]))[:limit]
            for name, counts in self.shards.items()
        }

    def above(self, threshold: int) -> dict[str, list[int]]:
        self.calls.append("above")
        return {
            name: [k for k, c in counts.items() if c >= threshold]
            for name, counts in self.shards.items()
        }

    def exact(self, keys: list[int]) -> dict[str, dict[int, int]]:
        self.calls.append("exact")
        self.fetched = len(keys)
        return {
            name: {k: counts[k] for k in keys if k in counts}
            for name, counts in self.shards.items()
        }

    def fill(self, ranked: list[int], missing: int) -> list[int]:
        self.calls.append("fill")
        return [k for k in self.catalog if k not in ranked][:missing]

    def top(self, n: int, *, with_fill: bool = False) -> TopN[int]:
        result = threshold_top_n(
            n,
            len(self.shards),
            self.local_top,
            self.above,
            self.exact,
            fill=self.fill if with_fill else None,
        )
        assert result.threshold == max(1, math.ceil(result.lower_bound / len(self.shards)))
        return result


def run_tput(shards: Shards, n: int) -> tuple[list[tuple[int, int]], int]:
    rounds = Rounds(shards)
    return rounds.top(n).ranked, rounds.fetched


per_shard_counts = st.lists(
    st.dictionaries(st.integers(0, 30), st.integers(0, 12), max_size=25),
    min_size=1,
    max_size=5,
)
# Few distinct counts over many keys: ties everywhere, at the cut too.
tied_counts = st.lists(
    st.dictionaries(st.integers(0, 40), st.integers(0, 3), max_size=40),
    min_size=1,
    max_size=6,
)


@settings(max_examples=500)
@given(shards=st.one_of(per_shard_counts, tied_counts), n=st.integers(1, 15))
def test_the_threshold_algorithm_always_equals_the_brute_force_top_n(
    shards: list[dict[int, int]], n: int
) -> None:
    # Ties (tied_counts has them everywhere, at the cut too) go to the lower key.
    ranked, _ = run_tput(shards, n)
    assert ranked == brute_force(shards, n)


@settings(max_examples=200)
@given(shards=tied_counts, n=st.integers(1, 15), catalog=st.sets(st.integers(0, 60)))
def test_fill_completes_a_short_list_with_zero_keys_lowest_first(
    shards: list[dict[int, int]], n: int, catalog: set[int]
) -> None:
    rounds = Rounds(shards, catalog | {k for counts in shards for k in counts})
    result = rounds.top(n, with_fill=True)
    positive = brute_force(shards, n)
    counted = {k for k, _ in positive}
    zeros = sorted(k for k in rounds.catalog if k not in counted)
    expected = positive + [(k, 0) for k in zeros][: n - len(positive)]
    assert result.ranked == expected
    assert ("fill" in rounds.calls) == (len(positive) < n)


def test_a_key_second_on_every_shard_wins_although_no_shard_ranks_it_first() -> None:
    # Per-shard top-1 lists would pick one of the stars; "everywhere" (key 9) has 6.
    shards = [{1: 3, 9: 2}, {2: 3, 9: 2}, {3: 3, 9: 2}]
    rounds = Rounds(shards)
    result = rounds.top(1)
    assert result.ranked == [(9, 6)]
    assert (result.lower_bound, result.threshold) == (3, 1)
    assert rounds.top(4).ranked == [(9, 6), (1, 3), (2, 3), (3, 3)]


def test_three_rounds_in_order_and_no_exact_round_without_candidates() -> None:
    rounds = Rounds([{1: 2}, {2: 1}])
    rounds.top(2)
    assert rounds.calls == ["local_top", "above", "exact"]
    empty = Rounds([{}, {}], catalog=[5, 7])
    assert empty.top(3).ranked == []
    assert empty.calls == ["local_top", "above"]
    assert empty.top(3, with_fill=True).ranked == [(5, 0), (7, 0)]


def test_the_threshold_algorithm_fetches_few_candidates_when_counts_are_skewed() -> None:
    # 3 shards, 1000 courses with a long tail: the candidate set stays small.
    shards = [{k: max(0, 200 - k * (s + 1)) for k in range(1000)} for s in range(3)]
    ranked, fetched = run_tput(shards, 10)
    assert ranked == brute_force(shards, 10)
    assert fetched < 40


@pytest.mark.parametrize("n", [0, -1])
def test_n_below_one_is_refused(n: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Rounds([{1: 1}]).top(n)


def _disjoint(shards: list[dict[int, int]]) -> list[dict[int, int]]:
    """Keep each key on the first shard that has it (a learner's points: one shard)."""
    seen: set[int] = set()
    kept: list[dict[int, int]] = []
    for counts in shards:
        kept.append({k: c for k, c in counts.items() if k not in seen})
        seen |= set(counts)
    return kept


@settings(max_examples=500)
@given(shards=st.one_of(per_shard_counts, tied_counts), n=st.integers(1, 15))
def test_one_shard_per_key_is_exact_after_the_first_round(
    shards: list[dict[int, int]], n: int
) -> None:
    disjoint = _disjoint(shards)
    rounds = Rounds(disjoint)
    result = threshold_top_n(
        n, len(disjoint), rounds.local_top, rounds.above, rounds.exact, shards_per_key=1
    )
    assert result.ranked == brute_force(disjoint, n)
    # Each shard's own top n holds every winner of that shard: no further round.
    assert rounds.calls == ["local_top"]
    assert result.candidates == 0
    assert result.threshold == max(1, result.lower_bound)


@settings(max_examples=200)
@given(shards=st.one_of(per_shard_counts, tied_counts), n=st.integers(1, 15))
def test_one_shard_per_key_needs_no_later_rounds(shards: list[dict[int, int]], n: int) -> None:
    disjoint = _disjoint(shards)
    rounds = Rounds(disjoint)
    result = threshold_top_n(n, len(disjoint), rounds.local_top, shards_per_key=1)
    assert result.ranked == brute_force(disjoint, n)


def test_keys_on_several_shards_need_every_round() -> None:
    rounds = Rounds([{1: 2}, {1: 3}])
    with pytest.raises(ValueError, match="above and exact"):
        threshold_top_n(1, 2, rounds.local_top)


def test_shards_per_key_below_one_is_refused() -> None:
    rounds = Rounds([{1: 2}])
    with pytest.raises(ValueError, match="shards_per_key"):
        threshold_top_n(1, 1, rounds.local_top, rounds.above, rounds.exact, shards_per_key=0)


@given(st.lists(st.uuids(), min_size=2, max_size=50))
def test_a_uuid_s_canonical_text_orders_as_the_uuid_and_as_postgresql_s_bytes(
    ids: list[uuid.UUID],
) -> None:
    # The leaderboard ranks and breaks ties on the user id's text (LEADERS_ALL).
    by_text = sorted(ids, key=str)
    assert by_text == sorted(ids)
    assert by_text == sorted(ids, key=lambda u: u.bytes)  # PostgreSQL compares uuids bytewise
