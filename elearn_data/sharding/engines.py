"""The node map: one SQLAlchemy engine (and pool) per PostgreSQL node.

Every shard has one primary engine and zero or more replica engines, built from
:class:`~elearn_data.config.Settings`. The primary URL may list several hosts
with ``target_session_attrs=read-write``: libpq then finds whichever host
accepts writes, so a promotion is followed without restarting the process
(a stale pooled connection is replaced at checkout when the server ended it,
or fails once on use; SQLAlchemy then invalidates the pool and the next
checkout reconnects through libpq's host walk). Replica engines are
autocommit engines (SQLAlchemy's ``isolation_level="AUTOCOMMIT"``). Stale
connections are handled by SQLAlchemy's public hooks only (see
:func:`_handle_stale_connections`).

Connections are made by psycopg2 from the libpq URI itself (``creator=``), so
every libpq feature the URI names keeps working; the password, the connect
timeout and the per-session ``statement_timeout`` / ``lock_timeout`` are added
as keyword arguments and never appear in a URL or a log line. Engines hide
bound parameters from their log lines and error messages (``hide_parameters``).
"""

from __future__ import annotations

import logging
import math
import select
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg2
import psycopg2.extensions
import psycopg2.extras
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import (
    ConnectionPoolEntry,
    NullPool,
    PoolProxiedConnection,
    PoolResetState,
    QueuePool,
)

from elearn_data.config import Settings, redact, url_hosts
from elearn_data.errors import InvalidInput
from elearn_data.sharding import probes
from elearn_data.sharding.probes import NodeProbe

log = logging.getLogger(__name__)

NodeRole = Literal["primary", "replica"]


@dataclass
class NodeHealth:
    """What the routing layer has learnt about a node (shared by all sessions)."""

    down_until: float = 0.0
    last_error: str | None = None
    replay_lsn: int = 0  # highest replay LSN observed (replicas only; monotonic)
    lag_bytes: int | None = None
    # time.monotonic() of the last lag check; never checked: -inf, not 0.0
    # (the clock counts from boot, so 0.0 is "recently" on a machine up for
    # less than check_interval_s, and an unchecked replica looked lagging).
    lag_checked_at: float = -math.inf
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def mark_down(self, error: str, for_seconds: float) -> None:
        self.down_until = time.monotonic() + for_seconds
        self.last_error = error

    def is_down(self) -> bool:
        return time.monotonic() < self.down_until

    def observe_replay(self, lsn: int) -> None:
        with self.lock:
            self.replay_lsn = max(self.replay_lsn, lsn)
            self.down_until = 0.0


@dataclass
class Node:
    """One PostgreSQL server as seen from this process."""

    shard: str
    role: NodeRole
    url: str  # without password
    engine: Engine
    health: NodeHealth = field(default_factory=NodeHealth)
    # A replica's pool of asynchronous connections (sharding.multiplex): reads
    # sent to several shards at once from one thread. None on a primary.
    multiplexed: QueuePool | None = None

    @property
    def address(self) -> str:
        """``host:port`` list of the node, without credentials."""
        return ",".join(f"{h}:{p}" for h, p in url_hosts(self.url))

    @property
    def label(self) -> str:
        return f"{self.shard}/{self.role}@{self.address}"


@dataclass(frozen=True)
class PoolStats:
    """Pool counters of one node's engine."""

    shard: str
    role: NodeRole
    address: str
    size: int
    checked_out: int
    overflow: int
    checked_in: int
    # "engine": the node's SQLAlchemy engine; "multiplexed": a replica's pool of
    # asynchronous connections (sharding.multiplex).
    pool: Literal["engine", "multiplexed"] = "engine"


def _connect_kwargs(settings: Settings, password: str | None, application: str) -> dict[str, Any]:
    options = []
    if settings.statement_timeout_ms:
        options.append(f"-c statement_timeout={settings.statement_timeout_ms}")
    if settings.lock_timeout_ms:
        options.append(f"-c lock_timeout={settings.lock_timeout_ms}")
    kwargs: dict[str, Any] = {
        "connect_timeout": settings.connect_timeout_s,
        "application_name": application,
    }
    if options:
        kwargs["options"] = " ".join(options)
    if password is not None:
        kwargs["password"] = password
    return kwargs


def build_engine(
    url: str,
    *,
    settings: Settings,
    password: str | None,
    application: str = "elearn_data",
    pooled: bool = True,
    autocommit: bool = False,
) -> Engine:
    """Return an engine that connects with psycopg2 to the libpq URI ``url``.

    ``autocommit``: the engine's connections are in autocommit (SQLAlchemy's
    ``isolation_level="AUTOCOMMIT"``, set once when a connection is made): a
    replica's engine, whose connections serve single-statement reads.
    """
    kwargs = _connect_kwargs(settings, password, application)

    def creator() -> Any:
        return psycopg2.connect(url, **kwargs)

    options: dict[str, Any] = {
        # Bound values (names, phones, password hashes) never reach a log line or
        # an exception's text: "[SQL parameters hidden due to hide_parameters=True]".
        "hide_parameters": True,
        # A connection in autocommit has no transaction to roll back at check-in.
        "skip_autocommit_rollback": True,
    }
    if autocommit:
        options["isolation_level"] = "AUTOCOMMIT"
    if not pooled:
        engine = create_engine(
            "postgresql+psycopg2://", creator=creator, poolclass=NullPool, **options
        )
    else:
        pool = settings.pool
        engine = create_engine(
            "postgresql+psycopg2://",
            creator=creator,
            poolclass=QueuePool,
            pool_size=pool.size,
            max_overflow=pool.max_overflow,
            pool_timeout=pool.timeout_s,
            pool_recycle=pool.recycle_s,
            pool_pre_ping=pool.pre_ping,
            # Statements are compiled once per process and reused.
            query_cache_size=1200,
            **options,
        )
    _handle_stale_connections(engine, autocommit=autocommit)
    return engine


def _wait_async(conn: Any, deadline: float | None) -> None:
    """Drive the asynchronous psycopg2 connection ``conn`` until its operation is done."""
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise psycopg2.OperationalError("timeout expired")
        if state == psycopg2.extensions.POLL_READ:
            select.select([conn], [], [], left)
        else:
            select.select([], [conn], [], left)


def build_multiplexed_pool(
    url: str, *, settings: Settings, password: str | None, application: str = "elearn_data"
) -> QueuePool:
    """Return a pool of asynchronous connections to the replica ``url`` (sharding.multiplex).

    Connected as :func:`build_engine`'s connections are (same credentials,
    ``application_name``, server-side timeouts) and sized as its pool. libpq
    leaves ``connect_timeout`` to the application in asynchronous mode: the
    set-up enforces it here. An asynchronous connection is always in
    autocommit and refuses ``rollback()``: nothing is reset at check-in.
    """
    kwargs = _connect_kwargs(settings, password, application)
    timeout = settings.connect_timeout_s

    def creator() -> Any:
        conn = psycopg2.connect(url, async_=True, **kwargs)
        try:
            _wait_async(conn, time.monotonic() + timeout if timeout else None)
            # What SQLAlchemy's psycopg2 dialect registers on its connections:
            # uuid columns come back as uuid.UUID, as on the engine's path.
            psycopg2.extras.register_uuid(None, conn)
        except BaseException:
            conn.close()
            raise
        return conn

    pool = settings.pool
    return QueuePool(
        creator,
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        timeout=pool.timeout_s,
        recycle=pool.recycle_s,
        reset_on_return=None,
    )


# SQLSTATEs that end the session, not just the statement: connection exceptions
# (class 08) and the server's operator interventions (terminated by an
# administrator or a shutdown, crash shutdown, cannot connect now).
_SESSION_ENDED = ("08", "57P01", "57P02", "57P03")
_READ_COMMITTED = psycopg2.extensions.ISOLATION_LEVEL_READ_COMMITTED
_IDLE = psycopg2.extensions.TRANSACTION_STATUS_IDLE


def ends_session(exc: BaseException) -> bool:
    """True when the driver error ``exc`` means the connection is gone, by SQLSTATE.

    SQLAlchemy's psycopg2 dialect recognises a lost connection by libpq's
    message texts; the SQLSTATE says it in any server language.
    """
    code = getattr(exc, "pgcode", None)
    return isinstance(code, str) and code.startswith(_SESSION_ENDED)


class BeginsFirst(psycopg2.extensions.cursor):  # type: ignore[misc]  # untyped base
    """A cursor whose statement also begins its connection's transaction, in the same string.

    The connection's ``cursor_factory`` while its transaction is still to
    begin (``twophase.ServerTransaction``): the first statement any cursor of the
    connection runs is sent as ``BEGIN; <statement>`` -- what psycopg2 sends as
    two round trips outside autocommit -- and the connection's cursors are
    plain again from then on. A statement that cannot take the prefix (several
    parameter sets, COPY, a named cursor, bytes) gets ``BEGIN`` on its own first.
    """

    def _begins(self) -> bool:
        connection = self.connection
        if connection.cursor_factory is not BeginsFirst:
            return False
        connection.cursor_factory = None
        return True

    def _begin_alone(self) -> None:
        if self._begins():
            super().execute("BEGIN")

    def execute(self, query: Any, vars: Any = None) -> None:
        if self.name is None and isinstance(query, str) and self._begins():
            super().execute("BEGIN; " + query, vars)
            return
        self._begin_alone()
        super().execute(query, vars)

    def executemany(self, query: Any, vars_list: Any) -> None:
        self._begin_alone()
        super().executemany(query, vars_list)

    def callproc(self, procname: Any, parameters: Any = None) -> Any:
        self._begin_alone()
        return super().callproc(procname, parameters)

    def copy_expert(self, sql: Any, file: Any, size: int = 8192) -> None:
        self._begin_alone()
        super().copy_expert(sql, file, size)

    def copy_from(self, file: Any, table: Any, *args: Any, **kwargs: Any) -> None:
        self._begin_alone()
        super().copy_from(file, table, *args, **kwargs)

    def copy_to(self, file: Any, table: Any, *args: Any, **kwargs: Any) -> None:
        self._begin_alone()
        super().copy_to(file, table, *args, **kwargs)


def end_pending_begin(dbapi_connection: Any) -> None:
    """Forget a transaction that never began on ``dbapi_connection`` (its pool's reset hook)."""
    if getattr(dbapi_connection, "cursor_factory", None) is BeginsFirst:
        dbapi_connection.cursor_factory = None


def _handle_stale_connections(engine: Engine, *, autocommit: bool) -> None:
    """Replace connections the server ended, through SQLAlchemy's public hooks.

    * ``handle_error``: a statement that fails because the server ended the
      session (by SQLSTATE, see :func:`ends_session`) is a disconnect, so
      SQLAlchemy invalidates the connection and the rest of the pool (every
      connection made before the failure is replaced at its next checkout).
    * ``checkout``: a pooled connection libpq already knows to be closed, or
      whose socket has something to read while idle -- the server's farewell
      after ``pg_terminate_backend``, a shutdown or a restart -- is replaced
      before it is used (``DisconnectionError`` is the pool's documented
      "discard and reconnect" signal). No round trip: an idle connection
      receives nothing from a live server.
    * ``reset``: a connection in autocommit that goes back to the pool with a
      transaction open on the server (a snapshot reader's or a writer's
      explicit ``BEGIN`` that nothing ended) is rolled back first; if that
      fails, the pool discards it. libpq knows the state locally: no round
      trip otherwise. A writer's ``BEGIN`` still waiting for its first
      statement (:class:`BeginsFirst`, on a primary's engine) is dropped:
      nothing began.
    * ``checkin`` (engines not in autocommit): a connection whose isolation
      level SQLAlchemy restored (after ``execution_options(isolation_level=...)``)
      goes back to psycopg2's server default rather than an explicit READ
      COMMITTED, which psycopg2 would undo with a ``SET`` round trip at the next
      switch to autocommit.
    """

    def on_error(context: ExceptionContext) -> None:
        if not context.is_disconnect and ends_session(context.original_exception):
            context.is_disconnect = True

    def on_checkout(
        dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        if dbapi_connection.closed:
            raise DisconnectionError("pooled connection was closed; reconnecting")
        readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
        if readable:
            raise DisconnectionError("the server ended the pooled connection; reconnecting")

    def on_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        if (
            dbapi_connection is not None
            and not dbapi_connection.closed
            and not dbapi_connection.autocommit
            and dbapi_connection.isolation_level == _READ_COMMITTED
        ):
            dbapi_connection.set_session(isolation_level="DEFAULT")

    def on_reset(dbapi_connection: Any, record: ConnectionPoolEntry, state: PoolResetState) -> None:
        if not autocommit:  # writers' connections (BeginsFirst) come from non-autocommit engines
            end_pending_begin(dbapi_connection)
        if (
            not state.terminate_only
            and dbapi_connection.autocommit
            and dbapi_connection.get_transaction_status() != _IDLE
        ):
            with dbapi_connection.cursor() as cursor:
                cursor.execute("ROLLBACK")

    event.listen(engine, "handle_error", on_error)
    event.listen(engine, "reset", on_reset)
    event.listen(engine, "checkout", on_checkout)
    if not autocommit:  # an autocommit engine's connections are never switched back
        event.listen(engine, "checkin", on_checkin)


class EngineMap:
    """Every node of every shard, with one pooled engine each.

    Thread-safe: engines and pools are; the map itself is immutable once built.
    """

    def __init__(self, settings: Settings, *, application: str = "elearn_data") -> None:
        self.settings = settings
        self._primaries: dict[str, Node] = {}
        self._replicas: dict[str, list[Node]] = {}
        self._shards = settings.shard_names  # the settings are immutable once validated
        for shard in settings.shard_names:
            cfg = settings.shards[shard]
            password = settings.shard_password(shard)
            assert cfg.primary is not None  # Settings validation guarantees it
            self._primaries[shard] = Node(
                shard,
                "primary",
                cfg.primary,
                build_engine(
                    cfg.primary, settings=settings, password=password, application=application
                ),
            )
            self._replicas[shard] = [
                Node(
                    shard,
                    "replica",
                    url,
                    build_engine(
                        url,
                        settings=settings,
                        password=password,
                        application=application,
                        autocommit=True,
                    ),
                    multiplexed=build_multiplexed_pool(
                        url, settings=settings, password=password, application=application
                    ),
                )
                for url in cfg.replicas
            ]

    @property
    def shards(self) -> tuple[str, ...]:
        return self._shards

    def _check(self, shard: str) -> None:
        if shard not in self._primaries:
            raise InvalidInput(f"unknown shard {shard!r}; shards: {', '.join(self.shards)}")

    def primary(self, shard: str) -> Node:
        """Return the shard's primary node."""
        self._check(shard)
        return self._primaries[shard]

    def replicas(self, shard: str) -> list[Node]:
        """Return the shard's replica nodes (possibly none)."""
        self._check(shard)
        return list(self._replicas[shard])

    def nodes(self) -> Iterator[Node]:
        """Yield every node, shard by shard, primary first."""
        for shard in self.shards:
            yield self._primaries[shard]
            yield from self._replicas[shard]

    def probe(self, node: Node, *, timeout: float | None = None) -> NodeProbe:
        """Connect to ``node`` outside its pool and report its role and position.

        As the application role; the probe itself is :func:`~elearn_data.sharding.probes.probe`.
        """
        kwargs = _connect_kwargs(self.settings, self.settings.shard_password(node.shard), "probe")
        if timeout is not None:
            kwargs["connect_timeout"] = max(1, int(timeout))
        return probes.probe(lambda: psycopg2.connect(node.url, **kwargs))

    def pool_stats(self) -> list[PoolStats]:
        """Return the pool counters of every node (a replica's multiplexed pool follows)."""
        stats: list[PoolStats] = []
        for node in self.nodes():
            engine_pool = node.engine.pool
            assert isinstance(engine_pool, QueuePool)
            pools: list[tuple[Literal["engine", "multiplexed"], QueuePool]] = [
                ("engine", engine_pool)
            ]
            if node.multiplexed is not None:
                pools.append(("multiplexed", node.multiplexed))
            for kind, pool in pools:
                stats.append(
                    PoolStats(
                        shard=node.shard,
                        role=node.role,
                        address=node.address,
                        size=pool.size(),
                        checked_out=pool.checkedout(),
                        overflow=max(0, pool.overflow()),
                        checked_in=pool.checkedin(),
                        pool=kind,
                    )
                )
        return stats

    def dispose(self) -> None:
        """Close every pooled connection of every node."""
        for node in self.nodes():
            node.engine.dispose()
            if node.multiplexed is not None:
                node.multiplexed.dispose()

    def describe(self) -> list[dict[str, str]]:
        """Return shard, role and redacted URL of every node (for reports)."""
        return [{"shard": n.shard, "role": n.role, "url": redact(n.url)} for n in self.nodes()]
