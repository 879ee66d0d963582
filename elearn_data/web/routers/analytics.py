"""``/v1/analytics``: platform figures for administrators."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from fastapi import APIRouter

from elearn_data.web.deps import Caller, Worker, require_role

router = APIRouter(tags=["analytics"])


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


@router.get("/v1/analytics/platform")
def platform(state: Worker, who: Caller) -> list[dict[str, Any]]:
    """Rows of ``platform_stats``: one per shard and the ``all`` row (admins; money as strings)."""
    require_role(state, who, "admin")
    frame = state.db.analytics.platform_stats()
    return [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
