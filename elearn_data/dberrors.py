"""Translate driver errors into the elearn_data error tree, once.

PL/pgSQL functions raise with our own SQLSTATEs (class ``EL``) so that a rule
violation inside the database arrives as the matching domain error:

========  =================
SQLSTATE  error
========  =================
EL400     InvalidInput
EL404     NotFound
EL409     InvalidState
EL410     CourseFull
EL411     AlreadyEnrolled
EL412     Duplicate
========  =================

PostgreSQL's own classes map as: unique violation -> Duplicate; check, not-null
and data exceptions -> InvalidInput; a missing referenced row -> NotFound; a
row still referenced -> InvalidState; serialization failures, deadlocks and
lock timeouts -> ConcurrencyConflict; connection failures, shutdowns, a
read-only (demoted) primary and statement timeouts -> ShardUnavailable.
"""

from __future__ import annotations

from typing import Any

import psycopg2
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from elearn_data.errors import (
    AlreadyEnrolled,
    ConcurrencyConflict,
    CourseFull,
    Duplicate,
    ElearnDataError,
    InvalidInput,
    InvalidState,
    NotFound,
    ShardUnavailable,
)

CUSTOM: dict[str, type[ElearnDataError]] = {
    "EL400": InvalidInput,
    "EL404": NotFound,
    "EL409": InvalidState,
    "EL410": CourseFull,
    "EL411": AlreadyEnrolled,
    "EL412": Duplicate,
}

UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "25006", "57014", "53300"}
CONFLICT_STATES = {"40001", "40P01", "55P03"}


def _diag(orig: Any) -> tuple[str | None, str, str | None]:
    pgcode = getattr(orig, "pgcode", None)
    message = ""
    constraint = None
    diag = getattr(orig, "diag", None)
    if diag is not None:
        message = diag.message_primary or ""
        constraint = diag.constraint_name
        if diag.message_detail and pgcode in {"23505", "23503"}:
            message = f"{message} ({diag.message_detail})"
    if not message:
        text = str(orig).strip()
        message = text.splitlines()[0] if text else type(orig).__name__
    return pgcode, message, constraint


def constraint_name(exc: BaseException) -> str | None:
    """Return the name of the constraint a driver error is about, if any."""
    orig = getattr(exc, "orig", exc)
    return _diag(orig)[2]


def translate(exc: BaseException, shard: str | None = None) -> ElearnDataError:
    """Return the domain error for a driver/SQLAlchemy error (the caller raises it from exc)."""
    if isinstance(exc, ElearnDataError):
        return exc
    where = shard or "?"
    if isinstance(exc, PoolTimeout):
        return ShardUnavailable(where, "connection pool exhausted")
    orig = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else exc
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return ShardUnavailable(where, "connection lost")
    pgcode, message, constraint = _diag(orig) if orig is not None else (None, str(exc), None)
    error = _classify(pgcode, message, where, exc, orig)
    error.constraint = constraint
    return error


def _classify(
    pgcode: str | None, message: str, where: str, exc: BaseException, orig: Any
) -> ElearnDataError:
    if pgcode is None:
        if isinstance(exc, DBAPIError) or orig is not None:
            return ShardUnavailable(where, message)
        return ElearnDataError(message)
    if pgcode in CUSTOM:
        return CUSTOM[pgcode](message)
    if pgcode == "23505":
        return Duplicate(message)
    if pgcode == "23503":
        if "still referenced" in message:
            return InvalidState(message)
        return NotFound(message)
    if pgcode in {"23514", "23502", "23P01"} or pgcode.startswith("22"):
        return InvalidInput(message)
    if pgcode in CONFLICT_STATES:
        return ConcurrencyConflict(message)
    if pgcode.startswith("08") or pgcode in UNAVAILABLE_STATES:
        return ShardUnavailable(where, message)
    if pgcode == "P0002":
        return NotFound(message)
    return ElearnDataError(f"{message} (SQLSTATE {pgcode})")


def is_disconnect(exc: BaseException) -> bool:
    """Return True when ``exc`` means the connection (not the statement) failed."""
    if isinstance(exc, PoolTimeout):
        return False
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        pgcode = getattr(exc.orig, "pgcode", None)
        return pgcode is None or pgcode.startswith("08") or pgcode in {"57P01", "57P02", "57P03"}
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        # A raw driver error that escaped SQLAlchemy (e.g. while setting the
        # isolation level of a pooled connection whose server went away).
        pgcode = getattr(exc, "pgcode", None)
        return pgcode is None or pgcode.startswith("08")
    return isinstance(exc, SQLAlchemyError) and "closed" in str(exc).lower()
