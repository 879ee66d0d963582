"""One error shape for every response: ``{"error": "<class>", "message": "..."}``.

Library errors keep their class name and message (messages name the offending
value, never a secret); statuses follow API.md. Anything unexpected is logged
with its traceback under the request id and answered as a bare
``InternalError`` naming only that id: no traceback, SQL or secret reaches a
client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from elearn_data import errors
from elearn_data.web.logs import current_request_id
from elearn_data.web.ratelimit import retry_after_header

log = logging.getLogger("elearn_data.web")

# Most specific first: the first class an error is an instance of decides.
STATUS: tuple[tuple[type[errors.ElearnDataError], int], ...] = (
    (errors.LoginThrottled, 429),
    (errors.NotFound, 404),
    (errors.InvalidInput, 422),
    (errors.Duplicate, 409),
    (errors.InvalidState, 409),
    (errors.ConcurrencyConflict, 409),
    (errors.Unavailable, 503),
)
_MAX_MESSAGE = 500


class ApiError(Exception):
    """An HTTP error of the API itself (authentication, authorisation, rate limits)."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "Unauthorized", message, {"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def rate_limited(what: str, wait_s: float) -> ApiError:
    return ApiError(
        429,
        "RateLimited",
        f"too many requests for this {what}; retry after {retry_after_header(wait_s)} s",
        {"Retry-After": retry_after_header(wait_s)},
    )


def body(error: str, message: str) -> dict[str, str]:
    return {"error": error, "message": message}


def error_response(
    status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body(error, message), status_code=status, headers=headers)


def _safe_message(exc: BaseException) -> str:
    # First line only: a driver message may go on with the statement on later lines.
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:_MAX_MESSAGE]


# The error classes of the API contract; a finer class (ForeignId, AbortedByRecovery,
# CommitPending, ...) is reported as its nearest contract base.
CONTRACT_ERRORS = frozenset(
    {
        "NotFound",
        "Duplicate",
        "DuplicateEmail",
        "InvalidInput",
        "UnknownRegion",
        "InvalidState",
        "CourseFull",
        "AlreadyEnrolled",
        "ShardUnavailable",
        "ContentUnavailable",
        "ConfigurationError",
        "RoutingError",
        "CrossShardQuery",
        "LoginThrottled",
        "ConcurrencyConflict",
        "AnalyticsTimeout",
    }
)


def public_name(exc: errors.ElearnDataError) -> str:
    """The error's class, or its nearest base among the API contract's error classes."""
    for cls in type(exc).__mro__:
        name: str = cls.__name__
        if name in CONTRACT_ERRORS and getattr(errors, name, None) is cls:
            return name
    return "ElearnDataError"


def domain_response(exc: errors.ElearnDataError) -> JSONResponse:
    """Map a library error to its status and body (500 for errors no caller can fix)."""
    name = public_name(exc)
    for cls, status in STATUS:
        if isinstance(exc, cls):
            if isinstance(exc, errors.ShardUnavailable):
                # The detail may carry a driver's message: name the shard only.
                return error_response(status, name, f"shard {exc.shard!r} is unavailable")
            if isinstance(exc, errors.ContentUnavailable):
                return error_response(status, name, "the content store is unavailable")
            headers = None
            if isinstance(exc, errors.LoginThrottled):
                wait = float(getattr(exc, "retry_after_s", 1.0) or 1.0)
                headers = {"Retry-After": retry_after_header(wait)}
            return error_response(status, name, _safe_message(exc), headers)
    log.error("unmapped library error %s: %s", name, exc)
    return internal_error()


def internal_error() -> JSONResponse:
    return error_response(
        500, "InternalError", f"internal error (request id {current_request_id()})"
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)[:_MAX_MESSAGE]


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""

    async def on_domain(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.ElearnDataError)
        return domain_response(exc)

    async def on_api(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.error, exc.message, exc.headers)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        # The input itself is not echoed: it may hold a password.
        assert isinstance(exc, RequestValidationError)
        return error_response(422, "InvalidInput", _validation_message(exc))

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        names = {404: "NotFound", 405: "MethodNotAllowed", 400: "BadRequest"}
        headers: dict[str, Any] | None = getattr(exc, "headers", None)
        return error_response(
            exc.status_code,
            names.get(exc.status_code, "HTTPError"),
            str(exc.detail)[:_MAX_MESSAGE],
            headers,
        )

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return internal_error()

    app.add_exception_handler(errors.ElearnDataError, on_domain)
    app.add_exception_handler(ApiError, on_api)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
