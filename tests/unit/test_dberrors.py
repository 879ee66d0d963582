"""The translation table of elearn_data.dberrors: by SQLSTATE and class, never by message.

Every error here is a synthetic psycopg2 error whose message has nothing to do
with its meaning (as if the server spoke another language): the mapping must
come from the SQLSTATE alone -- the error's ``pgcode`` or the one SQLSTATE its
``psycopg2.errors`` class stands for.
"""

from __future__ import annotations

from typing import Any

import psycopg2
import pytest
from psycopg2 import errors as pgerrors
from sqlalchemy.exc import (
    ArgumentError,
    CompileError,
    DBAPIError,
    InvalidRequestError,
    PendingRollbackError,
    ResourceClosedError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from elearn_data import dberrors, errors
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

# Messages that mean nothing to a message matcher (and one that would fool one).
UNRELATED = "Schlüssel ist nicht vorhanden / still referenced / connection closed"


def wrapped(orig: BaseException, statement: str = "SELECT 1") -> DBAPIError:
    """What SQLAlchemy raises for ``orig`` from ``statement`` (the subclass it picks)."""
    error: Any = DBAPIError.instance(statement, {}, orig, psycopg2.Error)
    assert isinstance(error, DBAPIError)
    return error


def synthetic(code: str, message: str = UNRELATED) -> psycopg2.Error:
    """A psycopg2 error of SQLSTATE ``code`` built client-side (no pgcode, no diag)."""
    return pgerrors.lookup(code)(message)


def with_pgcode(code: str, message: str = UNRELATED) -> psycopg2.Error:
    """A psycopg2 error carrying ``code`` as its pgcode (as the server's errors do)."""
    cls = type(f"Raised{code}", (psycopg2.DatabaseError,), {"pgcode": code})
    error: psycopg2.Error = cls(message)
    return error


# (SQLSTATE, domain error): every exact entry of the table and a member of each class.
TABLE: list[tuple[str, type[ElearnDataError]]] = [
    ("23505", Duplicate),
    ("23503", NotFound),
    ("23001", InvalidState),
    ("23502", InvalidInput),
    ("23514", InvalidInput),
    ("23P01", InvalidInput),
    ("22001", InvalidInput),
    ("22003", InvalidInput),
    ("22P02", InvalidInput),
    ("40001", ConcurrencyConflict),
    ("40P01", ConcurrencyConflict),
    ("55P03", ConcurrencyConflict),
    ("25006", ShardUnavailable),
    ("57014", ShardUnavailable),
    ("57P01", ShardUnavailable),
    ("57P02", ShardUnavailable),
    ("57P03", ShardUnavailable),
    ("53300", ShardUnavailable),
    ("53100", ShardUnavailable),
    ("08006", ShardUnavailable),
    ("08001", ShardUnavailable),
    ("P0002", NotFound),
]
CUSTOM: list[tuple[str, type[ElearnDataError]]] = [
    ("EL400", InvalidInput),
    ("EL404", NotFound),
    ("EL409", InvalidState),
    ("EL410", CourseFull),
    ("EL411", AlreadyEnrolled),
    ("EL412", Duplicate),
]
DISCONNECTS = {"57P01", "57P02", "57P03", "08006", "08001"}


def test_the_table_covers_every_mapped_sqlstate() -> None:
    tested = {code for code, _ in TABLE + CUSTOM}
    assert set(dberrors.STATES) <= tested
    assert {code[:2] for code in tested} >= set(dberrors.CLASSES)


@pytest.mark.parametrize(("code", "expected"), TABLE)
def test_a_sqlstate_maps_by_its_class_whatever_the_message(
    code: str, expected: type[ElearnDataError]
) -> None:
    orig = synthetic(code)
    assert orig.pgcode is None  # nothing but the class says what it is
    error = dberrors.translate(wrapped(orig), "eu")
    assert type(error) is expected
    if isinstance(error, ShardUnavailable):
        assert error.shard == "eu"
        assert error.disconnect is (code in DISCONNECTS)


@pytest.mark.parametrize(("code", "expected"), TABLE + CUSTOM)
def test_a_sqlstate_maps_by_the_servers_pgcode(code: str, expected: type[ElearnDataError]) -> None:
    assert type(dberrors.translate(wrapped(with_pgcode(code)), "eu")) is expected
    # A raw driver error (one that escaped SQLAlchemy) maps the same way.
    assert type(dberrors.translate(with_pgcode(code), "eu")) is expected


def test_the_message_is_kept_as_text_only() -> None:
    error = dberrors.translate(wrapped(synthetic("23505", "doppelter Schlüssel")))
    assert str(error) == "doppelter Schlüssel"


def test_a_foreign_key_violation_of_a_delete_is_a_row_still_referenced() -> None:
    orig = synthetic("23503", "Fremdschlüssel verletzt")
    deleting = dberrors.translate(wrapped(orig, "DELETE FROM courses WHERE courses.id = %(id)s"))
    assert type(deleting) is InvalidState
    inserting = dberrors.translate(wrapped(orig, "INSERT INTO enrollments (id) VALUES (%(id)s)"))
    assert type(inserting) is NotFound
    # The words of a message decide nothing: "still referenced" on an INSERT is NotFound.
    worded = synthetic("23503", "Key (id)=(1) is still referenced from table enrollments.")
    assert type(dberrors.translate(wrapped(worded, "INSERT INTO t VALUES (1)"))) is NotFound


def test_connection_failures_are_disconnects() -> None:
    invalidated: Any = DBAPIError.instance(
        "SELECT 1", {}, synthetic("57014"), psycopg2.Error, connection_invalidated=True
    )
    lost = dberrors.translate(invalidated, "na")
    assert isinstance(lost, ShardUnavailable) and lost.disconnect
    for orig in (psycopg2.OperationalError(UNRELATED), psycopg2.InterfaceError(UNRELATED)):
        error = dberrors.translate(wrapped(orig), "na")
        assert isinstance(error, ShardUnavailable) and error.disconnect, orig
    reused = PendingRollbackError("Can't reconnect until invalid transaction", code="8s2b")
    error = dberrors.translate(reused, "na")
    assert isinstance(error, ShardUnavailable) and error.disconnect
    exhausted = dberrors.translate(PoolTimeout("QueuePool limit"), "na")
    assert isinstance(exhausted, ShardUnavailable) and not exhausted.disconnect


def programming_errors() -> list[BaseException]:
    return [
        # Refused by the server as malformed or not permitted (class 42, ...).
        wrapped(synthetic("42703")),
        wrapped(synthetic("42601")),
        wrapped(synthetic("42501")),
        wrapped(with_pgcode("42P01")),
        # SQLSTATEs without a domain meaning.
        wrapped(synthetic("0A000")),
        wrapped(synthetic("XX000")),
        wrapped(with_pgcode("ZZ999")),
        with_pgcode("25P02"),
        # Client-side misuse.
        wrapped(psycopg2.ProgrammingError("can't execute an empty query")),
        wrapped(psycopg2.DatabaseError(UNRELATED)),
        psycopg2.ProgrammingError(UNRELATED),
        ArgumentError(UNRELATED),
        CompileError(UNRELATED),
        InvalidRequestError(UNRELATED),
        # A Session used after a failed flush without a rollback.
        PendingRollbackError("This Session's transaction has been rolled back", code="7s2a"),
        ResourceClosedError("This result object is closed."),
        StatementError(UNRELATED, "SELECT :a", {}, KeyError("a")),
        RuntimeError(UNRELATED),
    ]


@pytest.mark.parametrize("exc", programming_errors(), ids=lambda e: type(e).__name__)
def test_programming_errors_and_unknown_sqlstates_pass_through_unchanged(
    exc: BaseException,
) -> None:
    with pytest.raises(type(exc)) as info:
        dberrors.translate(exc, "eu")
    assert info.value is exc
    assert not isinstance(info.value, ElearnDataError)


def test_domain_errors_are_returned_as_they_are() -> None:
    error = NotFound("x")
    assert dberrors.translate(error) is error


def test_every_error_class_lives_in_errors() -> None:
    from elearn_data import content, ids  # noqa: PLC0415
    from elearn_data.sharding import session  # noqa: PLC0415

    for name in ("ContentUnavailable", "RoutingError", "ForeignId", "Unavailable"):
        assert name in errors.__all__
    assert content.ContentUnavailable is errors.ContentUnavailable
    assert ids.ForeignId is errors.ForeignId
    assert session.RoutingError is errors.RoutingError
    assert issubclass(errors.ShardUnavailable, errors.Unavailable)
    assert issubclass(errors.ContentUnavailable, errors.Unavailable)
    assert issubclass(errors.Unavailable, ElearnDataError)
