"""The ``connect()`` object: engines, routing, causal tokens and units of work in one place.

One :class:`Database` per process (or per test) is the intended use; it is safe
to share between threads. Each public repository call runs as one unit of work.
Writes merge their causal token into the object's token store, and every later
read through the same object waits for (or routes around) replicas that have
not replayed those writes: one ``connect()`` object always reads its own writes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from elearn_data.config import Settings, load_settings
from elearn_data.dberrors import is_disconnect
from elearn_data.errors import ConcurrencyConflict, ShardUnavailable
from elearn_data.sharding.consistency import CausalToken, TokenStore
from elearn_data.sharding.unit_of_work import Cluster, UnitOfWork

log = logging.getLogger(__name__)

T = TypeVar("T")

# A serialization failure, deadlock or lock timeout wrote nothing: retry a few times.
CONFLICT_RETRIES = 3


class Database:
    """Entry point of the library (see API.md, "Entry point")."""

    def __init__(self, settings: Settings, *, application: str = "elearn_data") -> None:
        self.settings = settings
        self.cluster = Cluster.build(settings, application=application)
        self.router = self.cluster.router
        self._tokens = TokenStore()
        self._closed = False
        self._lock = threading.Lock()

    # ----------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.cluster.engines.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- tokens

    @property
    def token(self) -> CausalToken:
        """The causal token of every write made through this object so far."""
        return self._tokens.current()

    def observe(self, token: CausalToken) -> None:
        """Merge a token obtained elsewhere (e.g. from another process) into this object's."""
        self._tokens.merge(token)

    # -------------------------------------------------------- units of work

    def _shard(self, region_or_shard: object | None) -> str:
        if region_or_shard is None:
            return self.router.local_shard
        return self.router.resolve(region_or_shard)

    @contextmanager
    def writer(self, region_or_shard: object | None = None) -> Iterator[UnitOfWork]:
        """A unit of work on primaries; commits on success (atomically across shards)."""
        uow = UnitOfWork(self.cluster, "writer", self._shard(region_or_shard))
        with uow.scope():
            yield uow
        self._tokens.merge(uow.committed_token)

    @contextmanager
    def reader(
        self,
        region_or_shard: object | None = None,
        *,
        token: CausalToken | None = None,
        snapshot: bool = False,
    ) -> Iterator[UnitOfWork]:
        """A unit of work on replicas that have replayed ``token`` (default: this object's)."""
        effective = self.token if token is None else token
        uow = UnitOfWork(
            self.cluster, "reader", self._shard(region_or_shard), token=effective, snapshot=snapshot
        )
        with uow.scope():
            yield uow

    # ------------------------------------------------- one call = one UoW

    def write(self, shard: object | None, fn: Callable[[UnitOfWork], T]) -> T:
        """Run ``fn`` in a writer unit of work, retrying what provably wrote nothing.

        A dropped connection before the commit started (a stale pooled connection
        after a restart or a failover) and a concurrency conflict are retried;
        anything else, and any failure during the commit, is raised.
        """
        attempt = 0
        while True:
            attempt += 1
            uow_box: list[UnitOfWork] = []
            try:
                with self.writer(shard) as uow:
                    uow_box.append(uow)
                    return fn(uow)
            except ShardUnavailable as exc:
                started = bool(uow_box) and uow_box[0].commit_started
                if attempt > 1 or started or not is_disconnect(exc.__cause__ or exc):
                    raise
                log.info("retrying a write after a dropped connection: %s", exc)
            except ConcurrencyConflict:
                if attempt > CONFLICT_RETRIES:
                    raise

    def read(self, shard: object | None, fn: Callable[[UnitOfWork], T], **kw: Any) -> T:
        """Run ``fn`` in a reader unit of work; a replica that fails mid-read is retried."""
        uow_box: list[UnitOfWork] = []
        try:
            with self.reader(shard, **kw) as uow:
                uow_box.append(uow)
                return fn(uow)
        except ShardUnavailable as exc:
            if not is_disconnect(exc.__cause__ or exc):
                raise
            failed = [c.node for c in uow_box[0].choices.values()] if uow_box else []
            for node in failed:
                if node.role == "replica":
                    node.health.mark_down(str(exc), self.settings.replica.retry_down_after_s)
            log.info("retrying a read after a dropped connection: %s", exc)
        with self.reader(shard, **kw) as uow:
            return fn(uow)


def connect(settings: Settings | None = None) -> Database:
    """Return a Database for ``settings`` (default: ELEARN_* env, .env, or the local cluster)."""
    return Database(settings if settings is not None else load_settings())
