"""Merging per-shard partial results explicitly.

A SELECT sent to several shards through ShardedSession is *concatenated*:
ORDER BY, LIMIT, DISTINCT, GROUP BY and aggregates apply per shard, and
``session.scalar(select(func.count())...)`` silently returns the first shard's
count. These helpers run a statement on each shard and merge the partials the
way the statement needs (sum of counts and sums, never an average of averages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Executable, Row

from elearn_data.sharding.unit_of_work import UnitOfWork

T = TypeVar("T")


def per_shard_scalars(
    uow: UnitOfWork, statement: Executable, shards: Iterable[str] | None = None
) -> dict[str, Any]:
    """Return ``{shard: scalar}`` of a single-value statement run on each shard."""
    return {
        shard: uow.execute(statement, shard=shard).scalar()
        for shard in (shards or uow.router.shards)
    }


def sum_over_shards(
    uow: UnitOfWork, statement: Executable, shards: Iterable[str] | None = None
) -> int | Decimal:
    """Return the sum over shards of a COUNT/SUM statement (NULL counts as zero)."""
    total: int | Decimal = 0
    for value in per_shard_scalars(uow, statement, shards).values():
        if value is not None:
            total += value
    return total


def rows_over_shards(
    uow: UnitOfWork, statement: Executable, shards: Iterable[str] | None = None
) -> list[Row[Any]]:
    """Return the rows of ``statement`` from every shard, concatenated in shard order."""
    rows: list[Row[Any]] = []
    for shard in shards or uow.router.shards:
        rows.extend(uow.execute(statement, shard=shard).all())
    return rows


def top_n(rows: Sequence[T], n: int, key: Callable[[T], Any]) -> list[T]:
    """Return the global top ``n`` of per-shard top-``n`` candidate lists.

    Correct when each shard contributed its own top ``n`` by the same key: any
    row of the global top ``n`` is in the top ``n`` of its own shard.
    """
    return sorted(rows, key=key, reverse=True)[:n]
