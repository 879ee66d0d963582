"""Units of work: the only place where transactions begin, commit and roll back.

A **writer** binds every shard it touches to that shard's primary, opening the
connection on first use. On commit it flushes the ORM session and then commits
one shard plainly, or several shards atomically with the two-phase protocol of
:mod:`~elearn_data.sharding.twophase` (coordinator: the writer's home shard).
After the commit it reads each written primary's WAL position and returns it as
a :class:`~elearn_data.sharding.consistency.CausalToken`.

A **reader** binds each shard it touches to a replica that has replayed the
caller's token (or to the primary), in autocommit mode: one statement, one
round trip. ``snapshot=True`` gives one REPEATABLE READ snapshot per shard.

Repositories receive ``uow.session`` (ORM) or call ``uow.execute(..., shard=)``
(Core); they never commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from sqlalchemy import Connection, Executable, Result, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from elearn_data.config import Settings
from elearn_data.dberrors import translate
from elearn_data.errors import ShardUnavailable
from elearn_data.sharding import twophase
from elearn_data.sharding.consistency import CausalToken, ReadChoice, ReplicaSelector
from elearn_data.sharding.engines import EngineMap
from elearn_data.sharding.routing import Router
from elearn_data.sharding.session import RoutedSession

log = logging.getLogger(__name__)

Role = Literal["writer", "reader"]
# A result of any shape (SQLAlchemy 2.1 types rows by their column tuple).
AnyResult: TypeAlias = Result[*tuple[Any, ...]]

_CURRENT_LSN = text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")


@dataclass(frozen=True)
class Cluster:
    """What every unit of work of one ``connect()`` object shares."""

    settings: Settings
    engines: EngineMap
    router: Router
    selector: ReplicaSelector

    @classmethod
    def build(cls, settings: Settings, *, application: str = "elearn_data") -> Cluster:
        engines = EngineMap(settings, application=application)
        return cls(settings, engines, Router(settings), ReplicaSelector(engines, settings.replica))


class UnitOfWork:
    """One transaction per shard touched, committed together."""

    def __init__(
        self,
        cluster: Cluster,
        role: Role,
        default_shard: str,
        *,
        token: CausalToken | None = None,
        snapshot: bool = False,
    ) -> None:
        self.cluster = cluster
        self.router = cluster.router
        self.role = role
        self.default_shard = default_shard
        self.token = token or CausalToken()
        self.snapshot = snapshot
        self.choices: dict[str, ReadChoice] = {}
        self._connections: dict[str, Connection] = {}
        self._participants: dict[str, twophase.Participant] = {}
        self._gid = twophase.new_gid(default_shard) if role == "writer" else ""
        self._session: RoutedSession | None = None
        self._closed = False
        self.commit_started = False
        # The token of the last commit (what a reader must see to read these writes).
        self.committed_token = CausalToken()

    # ------------------------------------------------------------ connections

    @property
    def session(self) -> RoutedSession:
        """The ORM session of this unit of work (created on first use)."""
        if self._session is None:
            self._session = RoutedSession(self)
        return self._session

    @property
    def shards_touched(self) -> tuple[str, ...]:
        return tuple(self._connections)

    def connection(self, shard: str) -> Connection:
        """Return this unit of work's connection to ``shard``, opening it on first use.

        Raises:
            ShardUnavailable: the node cannot be reached.
        """
        conn = self._connections.get(shard)
        if conn is not None:
            return conn
        if self._closed:
            raise RuntimeError("this unit of work is finished")
        if shard not in self.cluster.engines.shards:
            raise ShardUnavailable(shard, "not a configured shard")
        try:
            if self.role == "writer":
                conn = self.cluster.engines.primary(shard).engine.connect()
                transaction = conn.begin_twophase(self._gid)
                self._participants[shard] = twophase.Participant(shard, conn, transaction)
            else:
                conn, choice = self.cluster.selector.connect(shard, self.token.get(shard))
                self.choices[shard] = choice
                if self.snapshot:
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                    conn.begin()
        except (DBAPIError, PoolTimeout) as exc:
            raise translate(exc, shard) from exc
        self._connections[shard] = conn
        return conn

    def execute(
        self, statement: Executable, params: Any = None, *, shard: str | None = None
    ) -> AnyResult:
        """Run a Core statement on one shard (the unit of work's own shard by default)."""
        target = shard or self.default_shard
        try:
            return self.connection(target).execute(statement, params)
        except SQLAlchemyError as exc:
            raise translate(exc, target) from exc

    def execute_all(
        self, statement: Executable, params: Any = None, *, shards: tuple[str, ...] | None = None
    ) -> dict[str, AnyResult]:
        """Run a Core statement on several shards (all by default), in shard order."""
        return {
            shard: self.execute(statement, params, shard=shard)
            for shard in (shards or self.router.shards)
        }

    # ------------------------------------------------------------ completion

    def commit(self) -> CausalToken:
        """Flush and commit every shard touched; return the causal token of the writes."""
        if self._closed:
            raise RuntimeError("this unit of work is finished")
        if self._session is not None:
            self._session.flush()
        if self.role == "reader":
            for conn in self._connections.values():
                if conn.in_transaction():
                    conn.commit()
            self.close()
            return CausalToken()
        self.commit_started = True
        touched = list(self._participants)
        try:
            if not touched:
                committed: list[str] = []
            elif len(touched) == 1:
                self._participants[touched[0]].transaction.commit()
                committed = touched
            else:
                coordinator = self.default_shard if self.default_shard in touched else touched[0]
                committed = twophase.commit_all(self._participants, coordinator, self._gid)
            token = self._read_positions(committed)
        finally:
            self.close()
        self.committed_token = token
        return token

    def _read_positions(self, shards: list[str]) -> CausalToken:
        lsns: dict[str, int] = {}
        for shard in shards:
            conn = self._connections[shard]
            try:
                conn.execution_options(isolation_level="AUTOCOMMIT")
                lsns[shard] = int(conn.execute(_CURRENT_LSN).scalar_one())
                conn.commit()
            except SQLAlchemyError as exc:
                # Committed, but the position is unknown: reads of this shard will
                # simply not be pinned; log rather than fail a committed write.
                log.warning("could not read the WAL position of shard %s: %s", shard, exc)
        return CausalToken(lsns)

    def rollback(self) -> None:
        """Roll back every shard touched (idempotent)."""
        if self._session is not None:
            try:
                self._session.rollback()
            except SQLAlchemyError as exc:
                log.debug("session rollback failed: %s", exc)
        for shard, conn in self._connections.items():
            try:
                part = self._participants.get(shard)
                if part is not None and part.transaction.is_active:
                    part.transaction.rollback()
                elif conn.in_transaction():
                    conn.rollback()
            except SQLAlchemyError as exc:
                log.debug("rollback on shard %s failed: %s", shard, exc)
        self.close()

    def close(self) -> None:
        """Return every connection to its pool."""
        if self._closed:
            return
        self._closed = True
        if self._session is not None:
            self._session.close()
        for conn in self._connections.values():
            try:
                conn.close()
            except SQLAlchemyError as exc:
                log.debug("closing a connection failed: %s", exc)

    @contextmanager
    def scope(self) -> Iterator[UnitOfWork]:
        """Commit on success, roll back on error, translate driver errors."""
        try:
            yield self
        except SQLAlchemyError as exc:
            self.rollback()
            raise translate(exc, self.default_shard) from exc
        except BaseException:
            self.rollback()
            raise
        else:
            try:
                self.commit()
            except SQLAlchemyError as exc:
                self.rollback()
                raise translate(exc, self.default_shard) from exc
