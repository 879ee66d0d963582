"""Translate driver errors into the elearn_data error tree, once, by SQLSTATE.

A driver error is known by its SQLSTATE: the server's ``pgcode`` or, for an
error that carries none (raised by client code, or built in a test), the one
SQLSTATE its ``psycopg2.errors`` class stands for. Nothing here reads a
server message, so the mapping holds whatever the server's ``lc_messages``.

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

PostgreSQL's own SQLSTATEs (:data:`STATES`, then the classes of :data:`CLASSES`):

==================================  ==========================================
SQLSTATE                            error
==================================  ==========================================
23505 unique violation              Duplicate
23503 foreign key violation         NotFound (the referenced row is missing);
                                    InvalidState when the failing statement is
                                    a DELETE (a row that is still referenced)
23001 restrict violation            InvalidState
23502, 23514, 23P01, class 22       InvalidInput
40001, 40P01, 55P03                 ConcurrencyConflict (nothing was written)
class 08, 57P01, 57P02, 57P03       ShardUnavailable, ``disconnect=True``
25006, 57014, class 53              ShardUnavailable (a read-only primary, a
                                    statement timeout, no resources)
P0002 no data found                 NotFound
==================================  ==========================================

Besides SQLSTATEs: a connection SQLAlchemy invalidated (also one used again
inside the transaction it was lost in: SQLAlchemy's error code 8s2b), and a
psycopg2 ``OperationalError``/``InterfaceError`` without SQLSTATE (the server
cannot be reached, or hung up), are a ShardUnavailable with
``disconnect=True``; an exhausted pool is a ShardUnavailable.

Retryability is decided here, once: a ConcurrencyConflict wrote nothing, and
``ShardUnavailable.disconnect`` says the connection failed, not the statement.
:mod:`elearn_data.retry` reads both, and nothing else.

Everything else is re-raised unchanged by :func:`translate`: programming
errors (SQL the server refuses as malformed or not permitted, e.g. class 42;
client-side misuse such as SQLAlchemy's ``ArgumentError``, ``CompileError``,
``InvalidRequestError``, or a psycopg2 ``ProgrammingError`` without SQLSTATE)
and any SQLSTATE the tables above do not name. They are bugs, or conditions
no caller can handle; translated, a caller catching ``ElearnDataError`` would
take them for a condition of the data and carry on.
"""

from __future__ import annotations

from typing import Any, NoReturn

import psycopg2
from psycopg2 import errorcodes
from psycopg2 import errors as pgerrors
from sqlalchemy.exc import DBAPIError, DisconnectionError, PendingRollbackError
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

FOREIGN_KEY_VIOLATION = "23503"

# Exact SQLSTATEs (checked first), then two-character SQLSTATE classes.
STATES: dict[str, type[ElearnDataError]] = {
    **CUSTOM,
    "23505": Duplicate,
    FOREIGN_KEY_VIOLATION: NotFound,
    "23001": InvalidState,
    "23502": InvalidInput,
    "23514": InvalidInput,
    "23P01": InvalidInput,
    "40001": ConcurrencyConflict,
    "40P01": ConcurrencyConflict,
    "55P03": ConcurrencyConflict,
    "25006": ShardUnavailable,
    "57014": ShardUnavailable,
    "57P01": ShardUnavailable,
    "57P02": ShardUnavailable,
    "57P03": ShardUnavailable,
    "P0002": NotFound,
}
CLASSES: dict[str, type[ElearnDataError]] = {
    "08": ShardUnavailable,
    "22": InvalidInput,
    "53": ShardUnavailable,
}

# The session is gone (not just the statement): the server shut down or hung up.
DISCONNECT_STATES = frozenset({"57P01", "57P02", "57P03"})
DISCONNECT_CLASSES = frozenset({"08"})

# SQLAlchemy's error code (``exc.code``) for a Connection used again after its
# server connection was lost inside a transaction ("Can't reconnect until
# invalid transaction is rolled back"); the Session's own code (7s2a) is misuse.
INVALIDATED_TRANSACTION = "8s2b"


def _states_of_classes() -> dict[type, str]:
    """The one SQLSTATE of each psycopg2.errors class (for errors that carry no pgcode)."""
    states: dict[type, str] = {}
    for name in dir(errorcodes):
        code = getattr(errorcodes, name)
        if name.isupper() and isinstance(code, str) and len(code) == 5:
            try:
                states[pgerrors.lookup(code)] = code
            except KeyError:  # a SQLSTATE psycopg2 has no class for
                continue
    return states


_STATE_OF_CLASS = _states_of_classes()


def sqlstate(orig: object) -> str | None:
    """Return the SQLSTATE of a driver error: its ``pgcode``, or the one its class stands for."""
    pgcode = getattr(orig, "pgcode", None)
    if isinstance(pgcode, str) and pgcode:
        return pgcode
    return _STATE_OF_CLASS.get(type(orig))


def _diag(orig: Any, pgcode: str | None) -> tuple[str, str | None]:
    """Return the message for the domain error and the constraint name (text only, never parsed)."""
    message = ""
    constraint = None
    diag = getattr(orig, "diag", None)
    if diag is not None:
        message = diag.message_primary or ""
        constraint = diag.constraint_name
        if diag.message_detail and pgcode in {"23505", FOREIGN_KEY_VIOLATION}:
            message = f"{message} ({diag.message_detail})"
    if not message:
        text = str(orig).strip()
        message = text.splitlines()[0] if text else type(orig).__name__
    return message, constraint


def constraint_name(exc: BaseException) -> str | None:
    """Return the name of the constraint a driver error is about, if any."""
    orig = getattr(exc, "orig", exc)
    return _diag(orig, sqlstate(orig))[1]


def translate(exc: BaseException, shard: str | None = None) -> ElearnDataError:
    """Return the domain error for a driver/SQLAlchemy error (the caller raises it from exc).

    Raises:
        BaseException: ``exc`` itself, unchanged, when it is not a condition of
            the data or the cluster (a programming error, an unmapped SQLSTATE,
            any non-driver exception): see the module doc.
    """
    if isinstance(exc, ElearnDataError):
        return exc
    where = shard or "?"
    if isinstance(exc, PoolTimeout):
        return ShardUnavailable(where, "connection pool exhausted")
    if isinstance(exc, DisconnectionError):
        return ShardUnavailable(where, f"connection lost: {exc}", disconnect=True)
    if isinstance(exc, PendingRollbackError) and exc.code == INVALIDATED_TRANSACTION:
        return ShardUnavailable(where, "connection lost inside the transaction", disconnect=True)
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return ShardUnavailable(where, "connection lost", disconnect=True)
        orig: object = exc.orig
    elif isinstance(exc, psycopg2.Error):
        # A raw driver error that escaped SQLAlchemy (e.g. while setting the
        # isolation level of a pooled connection whose server went away).
        orig = exc
    else:
        _pass_through(exc)
    code = sqlstate(orig)
    if code is None:
        if isinstance(orig, psycopg2.OperationalError | psycopg2.InterfaceError):
            # No SQLSTATE: libpq could not reach the server, or it hung up.
            return ShardUnavailable(where, _diag(orig, None)[0], disconnect=True)
        _pass_through(exc)
    kind = STATES.get(code) or CLASSES.get(code[:2])
    if kind is None:
        _pass_through(exc)
    message, constraint = _diag(orig, code)
    error: ElearnDataError
    if kind is ShardUnavailable:
        disconnect = code in DISCONNECT_STATES or code[:2] in DISCONNECT_CLASSES
        error = ShardUnavailable(where, message, disconnect=disconnect)
    elif code == FOREIGN_KEY_VIOLATION and _is_delete(exc):
        # Only a referenced row can make a DELETE violate a foreign key.
        error = InvalidState(message)
    else:
        error = kind(message)
    error.constraint = constraint
    return error


def _is_delete(exc: BaseException) -> bool:
    """Whether the statement that failed (our own SQL, as sent) is a DELETE."""
    statement = getattr(exc, "statement", None)
    if not isinstance(statement, str):
        return False
    words = statement.split(None, 1)
    return bool(words) and words[0].upper() == "DELETE"


def _pass_through(exc: BaseException) -> NoReturn:
    raise exc


__all__ = [
    "CLASSES",
    "CUSTOM",
    "STATES",
    "constraint_name",
    "sqlstate",
    "translate",
]
