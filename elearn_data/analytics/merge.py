"""Merge rules for per-shard partial aggregates (pure functions, no I/O).

Every shard answers with counts and sums over its own rows; the global figure
is built here:

* counts and sums add up over shards (learner-owned rows live on one shard, so
  the shards' row sets are disjoint -- distinct learner counts add up too);
* an average is the sum of the shards' sums over the sum of their counts,
  never an average of the shards' averages (:func:`elearn_data.aggregates.average`,
  which the catalog's course rating uses too);
* catalog (reference) counts are the same on every shard and are taken once,
  never added;
* a global top N comes from :func:`threshold_top_n`, which cannot miss a course
  whose enrollments are spread over shards.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar


class SortableKey(Hashable, Protocol):
    """A key that can be hashed and ordered (ties in a ranking go to the lower key)."""

    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=SortableKey)


def add(values: Iterable[Any]) -> Any:
    """Return the sum of ``values`` with NULL (None) counted as zero (ints stay ints)."""
    total: Any = 0
    for value in values:
        if value is not None:
            total += value
    return total


def sum_partials(partials: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, Any]:
    """Return ``{column: sum over partials}`` for counts and sums."""
    rows = list(partials)
    return {column: add(row[column] for row in rows) for column in columns}


def catalog_count(values: Iterable[int | None]) -> int:
    """Return a catalog count that every shard reports: taken once (the highest), never added.

    Catalog rows are written to every primary in one two-phase commit, so the
    shards agree; a replica that has not replayed the latest catalog commit yet
    reports less, and the highest value is the most recent one.
    """
    present = [int(v) for v in values if v is not None]
    return max(present) if present else 0


def group_sum(
    rows: Iterable[Mapping[str, Any]], keys: Sequence[str], values: Sequence[str]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Return ``{key tuple: {value column: sum}}`` over rows from any number of shards."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        slot = merged.setdefault(key, dict.fromkeys(values, 0))
        for column in values:
            if row[column] is not None:
                slot[column] += row[column]
    return merged


@dataclass(frozen=True)
class TopN(Generic[K]):
    """The outcome of :func:`threshold_top_n`, with the figures that justify it."""

    ranked: list[tuple[K, int]]  # (key, exact global total), best first
    lower_bound: int  # tau: the N-th highest partial sum after phase 1
    threshold: int  # per-shard cut of phase 2: ceil(tau / number of shards), at least 1
    candidates: int  # keys whose exact totals were fetched in phase 3 (0 without it)


def threshold_top_n(
    n: int,
    num_shards: int,
    local_top: Callable[[int], Mapping[str, Sequence[tuple[K, int]]]],
    above: Callable[[int], Mapping[str, Iterable[K]]] | None = None,
    exact: Callable[[list[K]], Mapping[str, Mapping[K, int]]] | None = None,
    *,
    fill: Callable[[list[K], int], Sequence[K]] | None = None,
    shards_per_key: int | None = None,
) -> TopN[K]:
    """Return the global top ``n`` keys by their total over shards (TPUT, three rounds).

    The one top-N merge of the package (``db.catalog.popular`` and
    ``db.analytics.popular_courses`` call it); it does no I/O itself: each
    round is a callback that asks every shard and returns what they answered.

    Per-shard top-N lists alone can miss the global winner: a course that is
    second on every shard beats courses that are first on one shard only. The
    three-phase uniform threshold algorithm (Cao & Wang, PODC 2004) cannot:

    1. every shard sends its own top ``n`` (``local_top(n)``); summing what was
       received gives each key a partial sum, a lower bound of its total. The
       ``n``-th highest partial sum, ``tau``, is a lower bound of the ``n``-th
       highest *total*;
    2. every shard sends every key whose count there is at least
       ``t = ceil(tau / num_shards)`` (``above(t)``). A key whose total reaches
       ``tau`` has, over ``num_shards`` shards, at least one count of
       ``tau / num_shards`` or more, so every key that can be in the top ``n``
       -- ties at the boundary included -- is a candidate now;
    3. every shard sends its exact counts of the candidates (``exact(keys)``);
       their totals are exact, and the top ``n`` of them is the answer.

    When a key's count lives on fewer shards than there are (``shards_per_key``),
    the same argument over that many shards gives a higher cut,
    ``t = ceil(tau / shards_per_key)``. With one shard per key (a learner's
    points, which only their own shard holds) phase 1 is already exact and the
    call ends there (``above`` and ``exact`` are not called, and may be None):
    each count received is the key's total, and every key of the global top
    ``n`` is in its shard's top ``n`` -- the keys ranked before it on its shard
    (a higher count, or the same count and a lower key) rank before it globally
    too, and there are fewer than ``n`` of those. This needs each shard's list
    in the global order: count descending, then key ascending.

    Only keys with a positive total are ranked (``t`` is at least 1); when fewer
    than ``n`` keys have any count, every one of them is returned, followed by
    what ``fill`` adds (with a total of 0), if given. Ties are broken by the
    lower key, which is the order the shards' own lists use.

    Args:
        n: how many keys to return (>= 1).
        num_shards: how many shards answer each phase.
        local_top: phase 1, ``{shard: [(key, count), ...]}`` of each shard's top ``n``.
        above: phase 2, ``{shard: keys}`` whose count on the shard is ``>= t``
            (required unless ``shards_per_key`` is 1).
        exact: phase 3, ``{shard: {key: count}}`` for the given candidate keys
            (required unless ``shards_per_key`` is 1).
        fill: ``fill(ranked keys, missing)`` returns up to ``missing`` keys with no
            count anywhere, best first, to complete a list shorter than ``n``
            (called only then).
        shards_per_key: at most how many shards hold a count of one key
            (default ``num_shards``).

    Raises:
        ValueError: ``n`` is below 1, ``shards_per_key`` below 1, or a round
            needed is missing.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    spread = num_shards if shards_per_key is None else min(num_shards, shards_per_key)
    if spread < 1:
        raise ValueError(f"shards_per_key must be at least 1, not {shards_per_key}")
    if spread > 1 and (above is None or exact is None):
        raise ValueError("above and exact are needed when a key may live on several shards")
    partial: dict[K, int] = {}
    for rows in local_top(n).values():
        for key, count in rows:
            if count > 0:
                partial[key] = partial.get(key, 0) + int(count)
    sums = sorted(partial.values(), reverse=True)
    tau = sums[n - 1] if len(sums) >= n else 0
    threshold = max(1, math.ceil(tau / spread))
    if spread == 1:  # one shard per key: phase 1 is exact (see above)
        totals = partial
        fetched = 0
    else:
        assert above is not None and exact is not None
        candidates: set[K] = set(partial)
        for keys in above(threshold).values():
            candidates.update(keys)
        ordered = sorted(candidates)
        fetched = len(ordered)
        totals = dict.fromkeys(ordered, 0)
        if ordered:
            for counts in exact(ordered).values():
                for key, count in counts.items():
                    if key in totals:
                        totals[key] += int(count)
    ranked = sorted(
        ((key, total) for key, total in totals.items() if total > 0),
        key=lambda item: (-item[1], item[0]),
    )
    ranked = ranked[:n]
    if fill is not None and len(ranked) < n:
        present = {key for key, _ in ranked}
        for key in fill([key for key, _ in ranked], n - len(ranked)):
            if key not in present and len(ranked) < n:
                present.add(key)
                ranked.append((key, 0))
    return TopN(ranked, tau, threshold, fetched)
