"""``/v1/health``: the platform's health without secrets; ``/v1/health/live`` for probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from elearn_data.web.deps import Worker
from elearn_data.web.schemas import HealthOut, NodeHealth

router = APIRouter(tags=["health"])


@router.get("/v1/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
def health(state: Worker) -> JSONResponse:
    """Every node's role, reachability and lag, and the content store (503 when not ok).

    Addresses, error texts and credentials are left out: this call needs no token.
    """
    report = state.db.health()
    body = HealthOut(
        ok=report.ok,
        nodes=[
            NodeHealth(
                shard=n.shard,
                role=n.role,
                reachable=n.reachable,
                in_recovery=n.in_recovery,
                replay_lag_bytes=n.replay_lag_bytes,
                schema_revision=n.schema_revision,
            )
            for n in report.nodes
        ],
        content_store_reachable=bool(report.mongo.get("reachable")),
        checked_at=report.checked_at,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if report.ok else 503)


@router.get("/v1/health/live")
def live(state: Worker) -> dict[str, object]:
    """The worker answers (no database call): for process supervisors and load balancers."""
    return {"ok": True, "worker": state.worker_id}
