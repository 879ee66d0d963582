"""Per-shard scalars, explicitly: run one statement on each shard and add the partials.

A global unit of work already merges a SELECT over every shard exactly
(:mod:`~elearn_data.sharding.crossshard`); these helpers are for code that
wants each shard's own figure (``{shard: value}``) or a sum over an explicit
list of shards. The analytics layer (``elearn_data/analytics/merge.py``) holds
the richer merge rules of its DataFrames (catalog counts, top-N).
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
