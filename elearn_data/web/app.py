"""The application factory: one FastAPI app per worker process, one Database per app.

``create_app()`` builds the app; the worker's state (its Database, keys, rate
limiter) is made when the app starts (lifespan) and closed when it stops,
after uvicorn has let the in-flight requests finish: a worker that is told to
stop (SIGTERM, SIGINT) answers what it accepted and closes its pools.

:class:`ApiMiddleware` wraps every request: a request id (the caller's
``X-Request-ID`` or a new one) in every log line and in the response; the
per-address rate limit; and the causal scope. A request that sends
``X-Elearn-Causal-Token`` back is served inside
``Database.causal_scope(token)``: its reads wait for (or route around)
replicas that have not replayed that token, whichever worker takes it, and the
response's token is the request's merged with the writes it made. Without the
header, reads are as fresh as the replica policy allows (a replica within
``replica.max_lag_bytes``). The scope is per request: one client's token never
slows another client's reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from elearn_data.config import Settings, load_settings
from elearn_data.database import Database
from elearn_data.sharding.consistency import CausalToken, TokenStore
from elearn_data.web import errors
from elearn_data.web.keys import load_keyring
from elearn_data.web.logs import set_request_id
from elearn_data.web.ratelimit import RateLimiter, store_path
from elearn_data.web.routers import analytics, courses, enrollments, health, payments, users
from elearn_data.web.state import WorkerState, clean_request_id
from elearn_data.web.tokens import AccessTokens, CausalTokens, TokenError

log = logging.getLogger("elearn_data.web")
access_log = logging.getLogger("elearn_data.web.access")

CAUSAL_HEADER = "x-elearn-causal-token"
REQUEST_ID_HEADER = "x-request-id"
WORKER_HEADER = "x-elearn-worker"
# Not rate limited: probes and the API's own documentation.
_UNLIMITED = ("/v1/health", "/docs", "/openapi.json", "/redoc")


def build_state(settings: Settings) -> WorkerState:
    """Open the worker's Database and load its keys and rate limiter."""
    keys = load_keyring(settings)
    db = Database(settings, application="elearn-serve")
    limiter = RateLimiter(store_path(settings)) if settings.web.rate_limits_enabled else None
    return WorkerState(
        settings=settings,
        db=db,
        access=AccessTokens(
            keys, ttl_s=settings.web.access_token_ttl_s, issuer=settings.web.issuer
        ),
        causal=CausalTokens(keys, db.router.shards),
        limiter=limiter,
    )


class ApiMiddleware:
    """Request id, per-address rate limit and per-request causal scope (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: WorkerState = scope["app"].state.worker
        headers = dict(scope["headers"])
        request_id = clean_request_id(headers.get(b"x-request-id", b"").decode("latin-1"))
        set_request_id(request_id)
        started = time.perf_counter()
        path: str = scope["path"]
        client = scope.get("client")
        address = client[0] if client else "unknown"
        status = 0
        token, refusal = self._causal_token(state, headers)
        store = TokenStore(token)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                    (WORKER_HEADER.encode(), state.worker_id.encode()),
                    (CAUSAL_HEADER.encode(), state.causal.encode(store.current()).encode()),
                ]
            await send(message)

        try:
            if refusal is None:
                refusal = self._rate_limited(state, path, address)
            if refusal is not None:
                # The caller's token goes back unchanged: a refused call loses nothing.
                await refusal(scope, receive, send_with_headers)
                return
            with state.db.causal_scope(token) as store:
                try:
                    await self.app(scope, receive, send_with_headers)
                except Exception:
                    log.exception("unhandled error")
                    if status:  # the response has begun: nothing can be sent any more
                        raise
                    await errors.internal_error()(scope, receive, send_with_headers)
        finally:
            access_log.info(
                "%s %s %s %s %.1f ms",
                address,
                scope["method"],
                path,
                status or 500,
                (time.perf_counter() - started) * 1000,
            )

    @staticmethod
    def _causal_token(
        state: WorkerState, headers: dict[bytes, bytes]
    ) -> tuple[CausalToken, Response | None]:
        """Return the request's causal token, or the response refusing a forged one."""
        raw = headers.get(CAUSAL_HEADER.encode())
        if raw is None:
            return CausalToken(), None
        try:
            return state.causal.decode(raw.decode("latin-1")), None
        except TokenError as exc:
            refusal = errors.error_response(422, "InvalidInput", f"{CAUSAL_HEADER}: {exc}")
            return CausalToken(), refusal

    @staticmethod
    def _rate_limited(state: WorkerState, path: str, address: str) -> Response | None:
        """Return the 429 response when the client address is over its limit."""
        if state.limiter is None or path.startswith(_UNLIMITED):
            return None
        wait = state.limiter.hit(f"addr:{address}", state.settings.web.per_address)
        if wait is None:
            return None
        refused = errors.rate_limited("client address", wait)
        return errors.error_response(
            refused.status, refused.error, refused.message, refused.headers
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Return the REST API app (settings: given, or ELEARN_* / ELEARN_HOME, read at start-up)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings if settings is not None else load_settings()
        state = await anyio.to_thread.run_sync(build_state, resolved)
        # Blocking calls run in the thread pool: no more at once than a node's pool holds.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = resolved.pool.size + resolved.pool.max_overflow
        app.state.worker = state
        log.info("worker %s ready", state.worker_id)
        try:
            yield
        finally:
            log.info("worker %s stopping: closing pools", state.worker_id)
            await anyio.to_thread.run_sync(state.close)

    app = FastAPI(
        title="elearn_data REST API",
        version="1",
        summary="Users, courses, enrollments and payments over the region-sharded platform.",
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (users, courses, enrollments, payments, health, analytics):
        app.include_router(module.router)
    app.add_middleware(ApiMiddleware)
    return app
