"""Merging per-shard partial results explicitly.

A SELECT sent to several shards through ShardedSession is *concatenated*:
ORDER BY, LIMIT, DISTINCT, GROUP BY and aggregates apply per shard, and
``session.scalar(select(func.count())...)`` silently returns the first shard's
count. These helpers run a statement on each shard and add the partials (sums of
counts and sums); the analytics layer (``elearn_data/analytics/merge.py``) holds
the richer merge rules (averages, catalog counts, top-N).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import Executable

from elearn_data.sharding.unit_of_work import UnitOfWork


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
