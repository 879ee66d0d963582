"""Reads sent to several replicas at once from one thread (libpq's asynchronous mode).

A global reader that asks every shard one prepared read (a round of a
per-shard top-N merge, the leaderboard's one round) spends most of its time
around the statements when it gives each shard to a thread: a hand-off, a
checkout, an execute and a wake-up per shard, with the GIL passed between
them (about 440 µs of client CPU for three shards against 85 µs for the
three statements themselves, measured on the bench's 1M learners). libpq's
asynchronous API, which psycopg2 exposes as *asynchronous connections*
(``async_=True``, ``poll()``), lets one thread send every statement and then
wait on every socket at once.

An asynchronous connection cannot serve SQLAlchemy (every ``execute`` returns
before the server answers, and it has no transactions), so each replica keeps
a second, small pool of them beside its engine's: SQLAlchemy's ``QueuePool``
with the engine pool's size, overflow, timeout and recycling, connected as the
engine connects (same URL, credentials, ``application_name`` and server-side
statement and lock timeouts). They serve autocommit reads only, which is all
a replica does. Which replica a shard is read on is still the
:class:`~elearn_data.sharding.consistency.ReplicaSelector`'s decision
(``connect_pooled(..., multiplexed=True)``); a lost connection is invalidated
with the pool's older ones (as SQLAlchemy does after a disconnect) and
reported as :class:`ConnectionLost`, on which the caller reads again through
the ordinary path, which reconnects. A caller with a deadline (the analytics
fan-out) stops waiting then: a shard still running is reported as
:class:`NoAnswer` and its connection invalidated, never pooled busy.
"""

from __future__ import annotations

import select
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.extensions
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection, QueuePool

from elearn_data.dberrors import translate
from elearn_data.sharding import sqla
from elearn_data.sharding.engines import ends_session

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from elearn_data.sharding.unit_of_work import PreparedRead

_POLL_OK = psycopg2.extensions.POLL_OK
_POLL_READ = psycopg2.extensions.POLL_READ
_POLL_WRITE = psycopg2.extensions.POLL_WRITE
# SQLSTATEs of a server that lost (26000: a pooler switched server connections,
# DISCARD ALL) or already has (42P05) a prepared statement.
NOT_PREPARED = "26000"
ALREADY_PREPARED = "42P05"
# Key of the set of statement names prepared on a pooled connection (in its
# ``info``, which SQLAlchemy clears when the connection is replaced); both the
# engines' pools and the multiplexed pools use it.
PREPARED_KEY = "elearn_prepared"


class ConnectionLost(Exception):
    """A multiplexed connection to ``shard`` was lost; it and its pool's older ones are invalidated.

    Nothing was left behind (autocommit reads): the caller reads again on the
    ordinary path, which takes a new connection.
    """

    def __init__(self, shard: str, error: DBAPIError) -> None:
        super().__init__(f"shard {shard}: connection lost: {error.orig}")
        self.shard = shard
        self.error = error


class NoAnswer(Exception):
    """``shard`` had not answered by the caller's deadline; its connection was invalidated.

    A timed statement (``PreparedRead(timed=True)``) is also stopped by the
    server when its timeout ends; the connection is not returned to its pool
    with a statement running either way.
    """

    def __init__(self, shard: str) -> None:
        super().__init__(f"shard {shard}: no answer by the deadline")
        self.shard = shard


@dataclass
class Taken:
    """One shard's multiplexed connection for a call, and the engine of its node."""

    shard: str
    fairy: PoolProxiedConnection
    engine: Engine  # the node's engine: its dialect tells a disconnect, its pool is not used
    pool: QueuePool
    cursor: Any = None
    rows: list[tuple[Any, ...]] | None = None
    error: psycopg2.Error | None = None
    busy: bool = False
    sql: str = ""


def send(taken: Taken, query: PreparedRead, args: Sequence[Any]) -> None:
    """Send ``query`` with ``args`` on ``taken``'s connection; do not wait for the answer.

    A send that fails at once (the connection is already broken) is recorded
    for :func:`collect`, which reports it.
    """
    prepared: set[str] = taken.fairy.info.setdefault(PREPARED_KEY, set())
    taken.sql = query.execute_sql if query.name in prepared else query.prepare_and_execute_sql
    taken.error = None
    try:
        taken.cursor = taken.fairy.dbapi_connection.cursor()  # type: ignore[union-attr]
        taken.cursor.execute(taken.sql, args)
    except psycopg2.Error as exc:
        taken.error = exc
        return
    taken.busy = True


def _step(taken: Taken) -> int | None:
    """Advance ``taken``'s statement; return what it waits for (None: done or failed)."""
    try:
        state = taken.fairy.dbapi_connection.poll()  # type: ignore[union-attr]
    except psycopg2.Error as exc:
        taken.busy, taken.error = False, exc
        return None
    if state == _POLL_OK:
        taken.busy = False
        try:
            taken.rows = taken.cursor.fetchall()
        except psycopg2.Error as exc:
            taken.error = exc
        return None
    return int(state)


def _wait_all(taken: Sequence[Taken], deadline: float | None) -> None:
    """Drive every busy statement until each is done or failed, on one ``select``.

    ``deadline`` (``time.monotonic()``): return then, with the statements
    still running left busy.
    """
    waiting: dict[Any, Taken] = {t.fairy.dbapi_connection: t for t in taken if t.busy}
    states = {conn: _step(t) for conn, t in waiting.items()}
    while True:
        readers = [c for c, s in states.items() if s == _POLL_READ]
        writers = [c for c, s in states.items() if s == _POLL_WRITE]
        if not readers and not writers:
            return
        if deadline is None:
            ready_r, ready_w, _ = select.select(readers, writers, [])
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready_r, ready_w, _ = select.select(readers, writers, [], left)
        for conn in (*ready_r, *ready_w):
            states[conn] = _step(waiting[conn])


Outcome = list[tuple[Any, ...]] | BaseException


def collect(
    taken: Sequence[Taken],
    query: PreparedRead,
    args: Sequence[Any],
    *,
    deadline: float | None = None,
) -> dict[str, Outcome]:
    """Wait for every statement :func:`send` sent on ``taken``; return each shard's outcome.

    The outcome is the shard's rows, or the exception for its failure: a
    :class:`ConnectionLost` (the connection, and its pool's older ones, are
    invalidated: read the shard again elsewhere), a :class:`NoAnswer` (still
    running at ``deadline``, a ``time.monotonic()`` instant; no deadline: wait
    for every answer), or the domain error ``dberrors.translate`` names (a
    timeout, ...; a programming error stays SQLAlchemy's ``DBAPIError``). A
    shard whose server lost the prepared statement (or already has it) is
    sent the other form once more. Every connection is idle again when this
    returns or raises; one still busy (past the deadline, or an interrupt
    while waiting) is invalidated, never returned to its pool with a
    statement running.
    """
    late: set[str] = set()
    try:
        _wait_all(taken, deadline)
        again = [t for t in taken if not t.busy and _retry_prepare(t, query)]
        if again:
            for t in again:
                send(t, query, args)
            _wait_all(again, deadline)
        late = {t.shard for t in taken if t.busy}
    finally:
        abandon(taken)
    outcomes: dict[str, Outcome] = {}
    for t in taken:
        if t.shard in late:
            outcomes[t.shard] = NoAnswer(t.shard)
            continue
        if t.error is None:
            outcomes[t.shard] = t.rows or []
            continue
        failure = _failure(t)
        if isinstance(failure, ConnectionLost):
            outcomes[t.shard] = failure
            continue
        try:
            error: BaseException = translate(failure, t.shard)
        except BaseException as unmapped:  # not a condition of the data: raised as is
            error = unmapped
        if error is not failure:
            error.__cause__ = failure
        outcomes[t.shard] = error
    return outcomes


def abandon(taken: Sequence[Taken]) -> None:
    """Invalidate each connection of ``taken`` still running a statement (nobody waits for it)."""
    for t in taken:
        if t.busy:
            t.fairy.invalidate()
            t.busy = False


def _retry_prepare(taken: Taken, query: PreparedRead) -> bool:
    code = getattr(taken.error, "pgcode", None)
    prepared: set[str] = taken.fairy.info.setdefault(PREPARED_KEY, set())
    if code == NOT_PREPARED and taken.sql == query.execute_sql:
        prepared.discard(query.name)
        return True
    if code == ALREADY_PREPARED and taken.sql != query.execute_sql:
        prepared.add(query.name)
        return True
    if taken.error is None:
        prepared.add(query.name)
    return False


def _failure(taken: Taken) -> ConnectionLost | DBAPIError:
    """SQLAlchemy's wrapping of ``taken``'s error; a lost connection is invalidated first."""
    error = taken.error
    assert error is not None
    dialect = taken.engine.dialect
    wrapped = DBAPIError.instance(
        taken.sql, None, error, dialect.loaded_dbapi.Error, dialect=dialect
    )
    assert isinstance(wrapped, DBAPIError)  # error is a driver error
    conn = taken.fairy.dbapi_connection
    if dialect.is_disconnect(error, conn, taken.cursor) or ends_session(error):
        # This connection first (invalidating it twice would warn), then every
        # connection its pool made before it: what SQLAlchemy's execution does.
        taken.fairy.invalidate(error)
        sqla.invalidate_older(taken.pool, taken.fairy, error)
        return ConnectionLost(taken.shard, wrapped)
    return wrapped
