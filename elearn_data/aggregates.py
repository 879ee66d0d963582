"""Merge rules for partial aggregates that more than one layer uses (pure, no I/O).

The catalog (:mod:`elearn_data.repositories.catalog`, ``CourseView.rating``) and
analytics (:mod:`elearn_data.analytics.merge`, ``average_rating``) both turn
per-shard sums and counts into one global average. Both call :func:`average`,
so a course's rating reads the same wherever it is shown. This module needs
nothing beyond the standard library: the core package imports it without the
analytics stack.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

RATING_PLACES = Decimal("0.01")


def average(total: Any, count: Any) -> Decimal | None:
    """Return ``total / count`` rounded half-up to two places (None when ``count`` is 0).

    ``total`` and ``count`` are the sums over every shard of the shards' own sums
    and counts: the global average, never an average of the shards' averages.
    """
    if not count:
        return None
    return (Decimal(total) / Decimal(count)).quantize(RATING_PLACES, rounding=ROUND_HALF_UP)
