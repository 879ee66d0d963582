"""``/v1/health``: the platform's health without secrets; ``/v1/health/live`` for probes."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

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


@router.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
def metrics(state: Worker) -> PlainTextResponse:
    """The answering worker's Prometheus metrics (``Settings.web.metrics_enabled``; else 404).

    Counters and histograms (API calls, errors, pool checkouts) are the worker
    process's own; the figures read from the databases (lag, in-doubt
    transactions, outbox) are the platform's. The ``X-Elearn-Worker`` header
    says which worker answered.
    """
    if not state.db.settings.web.metrics_enabled:
        raise HTTPException(status_code=404, detail="metrics are not enabled")
    return PlainTextResponse(state.db.metrics(), media_type=CONTENT_TYPE_LATEST)
