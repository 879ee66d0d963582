"""Causal tokens and the choice of a node for reads.

Reads go to replicas, but a caller must see its own writes. Every committed
write yields a :class:`CausalToken`: per shard, the primary's WAL position
(LSN) right after the commit. A reader that holds a token uses a replica of a
shard only once that replica has replayed up to the token's LSN for the shard;
it waits at most ``ReplicaPolicy.causal_wait_s`` and otherwise reads from the
primary. A shard whose position after a commit could not be read at all is
pinned to its primary in the token (:data:`PRIMARY_ONLY`). A replica that
cannot be reached, lags more than ``ReplicaPolicy.max_lag_bytes``, or has WAL
waiting while its replay is paused or has not advanced for
``ReplicaPolicy.max_lag_s`` (a stalled replay serves stale rows to readers
without a token too), is skipped for a while, and the caller never sees an
error for it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg2.extensions
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import PoolProxiedConnection

from elearn_data.config import ReplicaPolicy
from elearn_data.sharding import sqla
from elearn_data.sharding.engines import EngineMap, Node, ends_session

log = logging.getLogger(__name__)

# Pauses between polls of a replica that has not replayed a token yet.
_FIRST_PAUSE_S = 0.0001
_MAX_PAUSE_S = 0.002
_REPLAY_LSN = text("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint")
_IN_RECOVERY = text("SELECT pg_is_in_recovery()")
# Replay position, received-but-not-replayed bytes and the WAL receiver's status,
# through the owner's function (revision 0005): the application role holds no
# pg_monitor, and pg_stat_wal_receiver hides its status from it.
_STANDBY_STATE = text(
    "SELECT replay_lsn, pending_bytes, receiver_status, pg_is_wal_replay_paused()"
    " FROM elearn_standby_state()"
)
# A token position no replica ever reaches: the shard is read from its primary.
PRIMARY_ONLY = 2**63 - 1
_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE
# The primary's WAL position as a number (bytes since 0/0), what a token holds:
# at or past the end of the commit just made. With synchronous_commit on (or
# local, remote_write, remote_apply) COMMIT returns after its record was
# flushed, so the write position is past it; with off it returns before, and
# the write position is behind the commit record (after every one of 2 000
# commits measured here), so a reader waiting for it could miss its own write:
# the insert position is past the record. Not the insert position always: it
# also covers other sessions' WAL not yet written, which a reader would wait
# for. The setting read is the session's at the time of the query: a
# ``SET LOCAL synchronous_commit = off`` has ended with its transaction
# (docs/architecture.md, "The current LSN").
CURRENT_LSN_SQL = (
    "SELECT pg_wal_lsn_diff(CASE current_setting('synchronous_commit')"
    " WHEN 'off' THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_lsn() END,"
    " '0/0')::bigint"
)


# A writer's COMMIT and the position after it, one round trip (twophase.ServerTransaction):
# a multi-statement string runs its statements in order, in the same session.
COMMIT_AND_POSITION_SQL = "COMMIT; " + CURRENT_LSN_SQL


def commit_and_position(
    conn: Connection, before: str = "", params: Mapping[str, Any] | None = None
) -> int:
    """Commit the transaction ``conn`` sent as SQL; return the WAL position just after it.

    ``conn``'s driver is in autocommit (the transaction is the caller's
    ``BEGIN``). One round trip: on the driver connection when nothing observes
    ``conn``, through SQLAlchemy otherwise (listeners see the string).
    ``before``: statements that go first in the same string (``%(name)s``
    placeholders, bound from ``params`` by the driver); the string stops at
    the first error, so the COMMIT runs only if they succeeded.
    """
    sql = before + COMMIT_AND_POSITION_SQL
    if sqla.observed(conn):
        return int(conn.exec_driver_sql(sql, dict(params) if params else None).scalar_one())
    return _current_lsn_on_driver(conn, conn.connection.dbapi_connection, sql, params)


def current_lsn(conn: Connection) -> int:
    """Return the WAL position of the primary ``conn`` is connected to (one round trip).

    The one implementation of the causal token's "current LSN" query (units of
    work after a commit, the two-phase protocol, the seeding bulk path). Called
    after the connection's transaction committed: the query runs in autocommit,
    so it opens no transaction of its own. An idle connection at the server's
    default isolation level that nothing observes (a writer's commit) is asked
    on its driver connection (:func:`_current_lsn_on_driver`); any other goes
    through SQLAlchemy's ``isolation_level="AUTOCOMMIT"``, and the pool restores
    the connection's level at check-in.
    """
    dbapi_connection: Any = None if conn.in_transaction() else conn.connection.dbapi_connection
    if (
        dbapi_connection is None
        or dbapi_connection.info.transaction_status != _IDLE
        or not (dbapi_connection.autocommit or dbapi_connection.isolation_level is None)
        or sqla.observed(conn)
    ):
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        lsn = int(conn.exec_driver_sql(CURRENT_LSN_SQL).scalar_one())
        conn.commit()  # ends SQLAlchemy's autobegun (server-side no-op) transaction
        return lsn
    return _current_lsn_on_driver(conn, dbapi_connection)


def _current_lsn_on_driver(
    conn: Connection,
    dbapi_connection: Any,
    sql: str = CURRENT_LSN_SQL,
    params: Mapping[str, Any] | None = None,
) -> int:
    """:func:`current_lsn` on the idle driver connection of ``conn``, without SQLAlchemy's
    execution (nothing observes ``conn``): the driver is switched to autocommit for
    the one query and back (both local: no ``SET`` is sent), so SQLAlchemy's view of
    the connection -- and the pool's reset at check-in -- stays as it was. Driver errors
    become ``DBAPIError`` and a lost connection is invalidated, as SQLAlchemy would do.
    ``sql``: the position query, or :data:`COMMIT_AND_POSITION_SQL` (with
    statements before it, bound from ``params``).
    """
    dialect = conn.dialect
    error = dialect.loaded_dbapi.Error
    switched = not dbapi_connection.autocommit
    cursor = None
    try:
        if switched:
            dbapi_connection.autocommit = True
        cursor = dbapi_connection.cursor()
        cursor.execute(sql, params)
        row = cursor.fetchone()
        cursor.close()
        if switched:
            dbapi_connection.autocommit = False
    except error as exc:
        disconnect = dialect.is_disconnect(exc, dbapi_connection, cursor) or ends_session(exc)
        if disconnect:
            conn.invalidate(exc)
        elif switched and not dbapi_connection.closed:
            dbapi_connection.autocommit = False
        raise DBAPIError.instance(
            sql, params, exc, error, connection_invalidated=disconnect, dialect=dialect
        ) from exc
    return int(row[0])


@dataclass(frozen=True)
class CausalToken:
    """Per-shard WAL positions a reader must have seen (immutable; merge with ``|``)."""

    lsns: Mapping[str, int] = field(default_factory=dict)

    def __or__(self, other: CausalToken) -> CausalToken:
        merged = dict(self.lsns)
        for shard, lsn in other.lsns.items():
            merged[shard] = max(lsn, merged.get(shard, 0))
        return CausalToken(merged)

    def get(self, shard: str) -> int | None:
        return self.lsns.get(shard)

    def __bool__(self) -> bool:
        return bool(self.lsns)


class TokenStore:
    """The latest causal token of one ``connect()`` object, or of one caller (thread-safe)."""

    def __init__(self, token: CausalToken | None = None) -> None:
        self._lock = threading.Lock()
        self._token = token if token is not None else CausalToken()

    def current(self) -> CausalToken:
        with self._lock:
            return self._token

    def merge(self, token: CausalToken) -> None:
        if not token:
            return
        with self._lock:
            self._token = self._token | token


class Remaining(NamedTuple):
    """The replicas a read may still try (in order), and whether it had any to begin with."""

    replicas: list[Node]
    had_replicas: bool


@dataclass(frozen=True)
class ReadChoice:
    """The node a reader settled on for a shard, and why."""

    node: Node
    reason: str  # "replica", "replica-caught-up", "primary-fallback", "primary-only"


class ReplicaSelector:
    """Picks, per shard, a replica that satisfies a token, or the primary."""

    def __init__(self, engines: EngineMap, policy: ReplicaPolicy) -> None:
        self._engines = engines
        self._policy = policy
        self._round_robin = itertools.count()
        # The node map is immutable once built: look the replicas up once.
        self._replicas = {shard: tuple(engines.replicas(shard)) for shard in engines.shards}
        # ReadChoice is immutable: one per (node, reason), not one per read.
        self._choices: dict[tuple[int, str], ReadChoice] = {}
        # Per replica (id of its Node): the replay position first seen with WAL
        # waiting, and when; a position that stays put means a stalled replay.
        self._stalls: dict[int, tuple[int, float]] = {}
        # Per replica: when a lag check last found its replay paused or stalled.
        self._stalled: dict[int, float] = {}

    def is_stalled(self, replica: Node) -> bool:
        """True when a recent lag check found the replica's replay paused or stalled.

        A finding older than a few check intervals (no reader looked since) no
        longer counts: the health check measures pauses itself.
        """
        seen = self._stalled.get(id(replica))
        fresh_s = max(5 * self._policy.check_interval_s, self._policy.max_lag_s)
        return seen is not None and time.monotonic() - seen <= fresh_s

    def _choice(self, node: Node, reason: str) -> ReadChoice:
        key = (id(node), reason)
        choice = self._choices.get(key)
        if choice is None:
            choice = self._choices[key] = ReadChoice(node, reason)
        return choice

    def connect(self, shard: str, lsn: int | None) -> tuple[Connection, ReadChoice]:
        """Return an autocommit connection for reading ``shard`` at or after ``lsn``.

        Autocommit: a single-statement read needs no BEGIN/ROLLBACK round trips;
        a reader that wants one snapshot over several statements switches the
        connection to REPEATABLE READ before its first statement. Falls back to
        the primary; only a failure of the primary raises.

        A replica's engine is an autocommit engine (``isolation_level="AUTOCOMMIT"``,
        see :func:`~elearn_data.sharding.engines.build_engine`); a primary's
        connections are shared with writers, so the primary fallback switches
        through ``execution_options``, and SQLAlchemy restores the level when
        the connection goes back to the pool.
        """
        replicas = self._candidates(shard, lsn)
        return self._connect(shard, lsn, Remaining(replicas, bool(replicas)))

    def _candidates(self, shard: str, lsn: int | None) -> list[Node]:
        """The replicas to try for ``lsn``, in this read's round-robin order (maybe none)."""
        if lsn == PRIMARY_ONLY:
            return []
        known = self._replicas.get(shard)
        replicas = [
            r
            for r in (known if known is not None else self._engines.replicas(shard))
            if not r.health.is_down()
        ]
        if len(replicas) > 1:
            start = next(self._round_robin) % len(replicas)
            replicas = replicas[start:] + replicas[:start]
        return replicas

    def connect_pooled(
        self, shard: str, lsn: int | None, *, multiplexed: bool = False
    ) -> tuple[PoolProxiedConnection, ReadChoice] | Remaining:
        """Return a replica's pooled driver connection for ``lsn``, when no query decides it.

        The point-read path (``UnitOfWork.fetch_prepared``): no SQLAlchemy
        ``Connection`` is built around the pooled connection. A replica
        qualifies as :meth:`connect` would take it without a round trip: not
        down, its lag measured less than ``check_interval_s`` ago and within
        bounds, and (with a token) already known to have replayed ``lsn``. A
        replica whose lag check is due or that would have to be waited for
        ends the search: the replicas left to try, that one first and in the
        same round-robin order, are returned for :meth:`connect_from`, which
        runs the queries (and falls back to the primary) exactly as
        :meth:`connect`. The pool's own hooks (checkout, reset, checkin) run as
        for any connection.

        ``multiplexed``: the connection comes from the replica's pool of
        asynchronous connections (:mod:`~elearn_data.sharding.multiplex`)
        instead of its engine's.
        """
        replicas = self._candidates(shard, lsn)
        policy = self._policy
        now = time.monotonic()
        for index, replica in enumerate(replicas):
            health = replica.health
            if now - health.lag_checked_at >= policy.check_interval_s or (
                lsn is not None and health.replay_lsn < lsn
            ):
                return Remaining(replicas[index:], True)
            if health.lag_bytes is None or health.lag_bytes > policy.max_lag_bytes:
                continue  # too far behind at the last check, as _too_far_behind says
            engine = replica.engine
            error = engine.dialect.loaded_dbapi.Error
            try:
                if multiplexed:
                    assert replica.multiplexed is not None  # every replica has one
                    pooled = replica.multiplexed.connect()
                else:
                    pooled = engine.raw_connection()
            except PoolTimeout as exc:
                self._mark_down(replica, exc)
                continue
            except error as exc:
                # The text engine.connect() would have raised (and _try_replica recorded).
                wrapped = DBAPIError.instance(None, None, exc, error, dialect=engine.dialect)
                self._mark_down(replica, wrapped)
                continue
            reason = "replica" if lsn is None else "replica-caught-up"
            return pooled, self._choice(replica, reason)
        return Remaining([], bool(replicas))

    def connect_from(
        self, shard: str, lsn: int | None, left: Remaining
    ) -> tuple[Connection, ReadChoice]:
        """:meth:`connect`, trying only what :meth:`connect_pooled` left."""
        return self._connect(shard, lsn, left)

    def _connect(
        self, shard: str, lsn: int | None, left: Remaining
    ) -> tuple[Connection, ReadChoice]:
        for replica in left.replicas:
            conn = self._try_replica(replica, lsn)
            if conn is not None:
                reason = "replica" if lsn is None else "replica-caught-up"
                return conn, self._choice(replica, reason)
        reason = "primary-fallback" if left.had_replicas else "primary-only"
        primary = self._engines.primary(shard)
        conn = primary.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return conn, self._choice(primary, reason)

    def _try_replica(self, replica: Node, lsn: int | None) -> Connection | None:
        try:
            conn = replica.engine.connect()
        except (DBAPIError, PoolTimeout) as exc:
            self._mark_down(replica, exc)
            return None
        try:
            if self._too_far_behind(replica, conn):
                conn.close()
                return None
            if lsn is None or replica.health.replay_lsn >= lsn:
                return conn
            deadline = time.monotonic() + self._policy.causal_wait_s
            pause = _FIRST_PAUSE_S
            while True:
                replayed = int(conn.execute(_REPLAY_LSN).scalar_one())
                conn.commit()  # ends SQLAlchemy's autobegun (server-side no-op) transaction
                replica.health.observe_replay(replayed)
                if replayed >= lsn:
                    return conn
                if time.monotonic() >= deadline:
                    conn.close()
                    return None
                # Replay right after a commit usually takes a fraction of a
                # millisecond: poll soon, then back off.
                time.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE_S)
        except SQLAlchemyError as exc:
            conn.invalidate()
            conn.close()
            self._mark_down(replica, exc)
            return None

    def _too_far_behind(self, replica: Node, conn: Connection) -> bool:
        """Check the replica's lag at most every ``check_interval_s`` (cached between checks).

        Measured on the replica alone, so that choosing a replica never touches the
        primary: WAL received but not yet replayed (bytes; and, while any waits,
        whether replay is paused or has not advanced for ``max_lag_s``: a stalled
        replay serves stale rows to readers without a token too), and whether
        the WAL receiver is streaming at all (a standby cut off from its primary
        serves stale data).
        """
        health = replica.health
        now = time.monotonic()
        if now - health.lag_checked_at < self._policy.check_interval_s:
            return health.lag_bytes is None or health.lag_bytes > self._policy.max_lag_bytes
        health.lag_checked_at = now
        if not conn.execute(_IN_RECOVERY).scalar_one():
            # Promoted (by Patroni or an operator) while pooled connections stayed
            # open: it is a primary now, not a replica. Drop its pool and skip it;
            # new connections ask for a standby, so it is used again only once
            # it has rejoined as one.
            conn.invalidate()
            health.lag_bytes = None
            log.warning("replica %s is no longer in recovery: not reading it", replica.label)
            replica.engine.dispose()
            replica.health.mark_down("not a standby", self._policy.retry_down_after_s)
            return True
        replayed, pending, receiver, paused = conn.execute(_STANDBY_STATE).one()
        conn.commit()
        health.observe_replay(int(replayed))
        # status is NULL when no WAL receiver runs (e.g. a promoted node).
        detached = receiver is not None and receiver != "streaming"
        waiting = int(pending or 0)
        stalled = self._observe_stall(replica, int(replayed), waiting, bool(paused), now)
        health.lag_bytes = None if detached or stalled else waiting
        if health.lag_bytes is None or health.lag_bytes > self._policy.max_lag_bytes:
            if detached:
                why = "not streaming"
            elif stalled:
                why = f"not replaying ({waiting} bytes waiting{', paused' if paused else ''})"
            else:
                why = f"{waiting} bytes behind"
            log.warning("replica %s is %s: reading from the primary", replica.label, why)
            return True
        return False

    def _observe_stall(
        self, replica: Node, replayed: int, waiting: int, paused: bool, now: float
    ) -> bool:
        key = id(replica)
        stalled_for = 0.0
        if waiting <= 0:
            self._stalls.pop(key, None)
        else:
            seen = self._stalls.get(key)
            if seen is not None and seen[0] == replayed:
                stalled_for = now - seen[1]
            else:
                self._stalls[key] = (replayed, now)
        stalled = waiting > 0 and (paused or stalled_for > self._policy.max_lag_s)
        if stalled:
            self._stalled[key] = now
        else:
            self._stalled.pop(key, None)
        return stalled

    def _mark_down(self, replica: Node, exc: BaseException) -> None:
        if not replica.health.is_down():
            # Under a failover manager every node is a replica candidate, and the one
            # that leads refuses standby connections all the time: not worth a warning.
            level = logging.INFO if "not in hot standby mode" in str(exc) else logging.WARNING
            log.log(level, "replica %s unavailable, skipping it: %s", replica.label, exc)
        replica.health.mark_down(str(exc).splitlines()[0], self._policy.retry_down_after_s)
