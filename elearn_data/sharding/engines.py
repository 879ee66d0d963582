"""The node map: one SQLAlchemy engine (and pool) per PostgreSQL node.

Every shard has one primary engine and zero or more replica engines, built from
:class:`~elearn_data.config.Settings`. The primary URL may list several hosts
with ``target_session_attrs=read-write``: libpq then finds whichever host
accepts writes, so a promotion is followed without restarting the process
(stale pooled connections fail once on use; SQLAlchemy then invalidates the
pool and the next checkout reconnects through libpq's host walk).

Connections are made by psycopg2 from the libpq URI itself (``creator=``), so
every libpq feature the URI names keeps working; the password, the connect
timeout and the per-session ``statement_timeout`` / ``lock_timeout`` are added
as keyword arguments and never appear in a URL or a log line. Engines hide
bound parameters from their log lines and error messages (``hide_parameters``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg2
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, PoolProxiedConnection, QueuePool

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
    lag_checked_at: float = 0.0
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
) -> Engine:
    """Return an engine that connects with psycopg2 to the libpq URI ``url``."""
    kwargs = _connect_kwargs(settings, password, application)

    def creator() -> Any:
        return psycopg2.connect(url, **kwargs)

    if not pooled:
        return create_engine(
            "postgresql+psycopg2://", creator=creator, poolclass=NullPool, hide_parameters=True
        )
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
        # Bound values (names, phones, password hashes) never reach a log line or
        # an exception's text: "[SQL parameters hidden due to hide_parameters=True]".
        hide_parameters=True,
    )
    _tolerate_dead_connections(engine)
    return engine


def _tolerate_dead_connections(engine: Engine) -> None:
    """Keep a connection the server dropped from failing a call that already succeeded.

    Found by the replica-stop drill (tests/integration/reliability/test_fault_drills.py):
    readers switch pooled connections to AUTOCOMMIT, and SQLAlchemy restores the
    isolation level when the connection goes back to the pool -- outside its own
    error handling. If the server went away in between (a replica stopped
    right after answering), ``Connection.close()`` raised a raw
    ``psycopg2.OperationalError`` out of a read whose result was already in hand.

    * A failed reset on a connection is logged and the connection closed, not raised.
    * On checkout, a connection libpq already knows to be closed or broken
      (``closed != 0``, no round trip) is replaced by the pool (DisconnectionError
      is the pool's documented "discard and reconnect" signal).
    """
    dialect = engine.dialect
    reset = dialect.reset_isolation_level

    def reset_isolation_level(dbapi_connection: Any) -> None:
        try:
            reset(dbapi_connection)
        except psycopg2.Error as exc:
            log.info("connection lost before it was returned to the pool: %s", exc)
            with contextlib.suppress(psycopg2.Error):
                dbapi_connection.close()

    dialect.reset_isolation_level = reset_isolation_level  # type: ignore[method-assign]

    def replace_broken(
        dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        if getattr(dbapi_connection, "closed", 0):
            raise DisconnectionError("pooled connection was closed; reconnecting")

    event.listen(engine, "checkout", replace_broken)


class EngineMap:
    """Every node of every shard, with one pooled engine each.

    Thread-safe: engines and pools are; the map itself is immutable once built.
    """

    def __init__(self, settings: Settings, *, application: str = "elearn_data") -> None:
        self.settings = settings
        self._primaries: dict[str, Node] = {}
        self._replicas: dict[str, list[Node]] = {}
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
                        url, settings=settings, password=password, application=application
                    ),
                )
                for url in cfg.replicas
            ]

    @property
    def shards(self) -> tuple[str, ...]:
        return self.settings.shard_names

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
        """Return the pool counters of every node."""
        stats: list[PoolStats] = []
        for node in self.nodes():
            pool = node.engine.pool
            assert isinstance(pool, QueuePool)
            stats.append(
                PoolStats(
                    shard=node.shard,
                    role=node.role,
                    address=node.address,
                    size=pool.size(),
                    checked_out=pool.checkedout(),
                    overflow=max(0, pool.overflow()),
                    checked_in=pool.checkedin(),
                )
            )
        return stats

    def dispose(self) -> None:
        """Close every pooled connection of every node."""
        for node in self.nodes():
            node.engine.dispose()

    def describe(self) -> list[dict[str, str]]:
        """Return shard, role and redacted URL of every node (for reports)."""
        return [{"shard": n.shard, "role": n.role, "url": redact(n.url)} for n in self.nodes()]
