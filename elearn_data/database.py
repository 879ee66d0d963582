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
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from elearn_data.analytics import Analytics
from elearn_data.config import Settings, load_settings
from elearn_data.content import ContentStore
from elearn_data.dberrors import is_disconnect
from elearn_data.errors import ConcurrencyConflict, ElearnDataError, ShardUnavailable
from elearn_data.monitoring.metrics import Metrics
from elearn_data.services.assessments import Assessments
from elearn_data.services.billing import Payments
from elearn_data.services.catalog import Catalog
from elearn_data.services.content import Content, Preferences
from elearn_data.services.learning import Enrollments, Reviews
from elearn_data.services.outbox import apply_pending
from elearn_data.services.users import Users
from elearn_data.sharding import twophase
from elearn_data.sharding.consistency import CausalToken, TokenStore
from elearn_data.sharding.unit_of_work import Cluster, UnitOfWork

if TYPE_CHECKING:
    from elearn_data.health import HealthReport

log = logging.getLogger(__name__)

T = TypeVar("T")

# A serialization failure, deadlock or lock timeout wrote nothing: retry a few times.
CONFLICT_RETRIES = 3

# The causal scope of the current caller (see Database.causal_scope): the Database
# it belongs to, and the caller's own token store. A context variable, so that it
# follows the caller into the thread pool of an async server, and only there.
_CAUSAL_SCOPE: ContextVar[tuple[Database, TokenStore] | None] = ContextVar(
    "elearn_causal_scope", default=None
)


class Database:
    """Entry point of the library (see API.md, "Entry point")."""

    def __init__(self, settings: Settings, *, application: str = "elearn_data") -> None:
        self.settings = settings
        self.cluster = Cluster.build(settings, application=application)
        self.router = self.cluster.router
        self._tokens = TokenStore()
        self._closed = False
        self._lock = threading.Lock()
        self._content_store: ContentStore | None = None
        self.users = Users(self)
        self.catalog = Catalog(self)
        self.enrollments = Enrollments(self)
        self.reviews = Reviews(self)
        self.payments = Payments(self)
        self.assessments = Assessments(self)
        self.content = Content(self)
        self.preferences = Preferences(self)
        self.analytics = Analytics(self)
        self._metrics = Metrics(self)  # after the services: it times their calls
        self._stop = threading.Event()
        self._recoverer: threading.Thread | None = None
        if settings.recover_on_connect:
            self._recover_quietly()
        if settings.recover_interval_s > 0:
            self._recoverer = threading.Thread(
                target=self._recover_periodically, name="elearn-recover", daemon=True
            )
            self._recoverer.start()

    def _recover_periodically(self) -> None:
        """Settle in-doubt transactions now and then: a crashed peer's locks do not linger."""
        while not self._stop.wait(self.settings.recover_interval_s):
            self._recover_quietly()

    def _recover_quietly(self) -> None:
        """Settle in-doubt two-phase transactions left by a crashed process (start-up)."""
        try:
            report = self.recover()
        except Exception as exc:  # neither start-up nor the recoverer may die of a down shard
            log.warning("two-phase recovery failed: %s", exc)
            return
        if report.resolved:
            log.warning(
                "two-phase recovery: %d committed, %d rolled back",
                len(report.committed),
                len(report.rolled_back),
            )

    def recover(self, *, grace_s: float | None = None) -> twophase.RecoveryReport:
        """Resolve in-doubt prepared transactions older than ``grace_s`` (default: settings)."""
        grace = self.settings.twophase_grace_s if grace_s is None else grace_s
        report = twophase.recover(self.cluster.engines, grace=timedelta(seconds=grace))
        if not report.unreachable:
            return report
        # A pooled connection that a failover or restart left stale fails once (its
        # pool is invalidated then): one more pass; settling is idempotent.
        again = twophase.recover(self.cluster.engines, grace=timedelta(seconds=grace))
        return twophase.RecoveryReport(
            committed=report.committed + again.committed,
            rolled_back=report.rolled_back + again.rolled_back,
            unreachable=again.unreachable,
            forgotten_decisions=report.forgotten_decisions + again.forgotten_decisions,
        )

    # ----------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close every pooled connection (and the content store's client)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            store, self._content_store = self._content_store, None
        self._stop.set()
        if self._recoverer is not None:
            self._recoverer.join(timeout=10)
        self.analytics.close()
        self.cluster.engines.dispose()
        if store is not None:
            store.close()

    def health(self, *, timeout_s: float = 3.0) -> HealthReport:
        """Check every node, replication lag, schema, content store, pools and statistics.

        Never raises for a down part: it is reported (``report.ok`` is False).
        """
        # Imported here: the report needs alembic, which a plain connect() should not load.
        from elearn_data.health import health_report  # noqa: PLC0415

        return health_report(self, timeout_s=timeout_s)

    def metrics(self) -> str:
        """Return this object's Prometheus metrics in the text exposition format.

        API call latencies and errors, pool checkouts and units of work are
        counted in this process; pool occupancy, replica lag, in-doubt two-phase
        transactions and the outbox backlog are read from the databases now.
        """
        return self._metrics.render()

    @property
    def metrics_registry(self) -> Metrics:
        """The metrics of this object (``.registry`` for a Prometheus exporter, ``.serve()``)."""
        return self._metrics

    # --------------------------------------------------------- content store

    @property
    def content_store(self) -> ContentStore:
        """The MongoDB (or in-process) content store, connected on first use."""
        with self._lock:
            if self._content_store is None:
                self._content_store = ContentStore(self.settings)
            return self._content_store

    def content_ready(self, content_id: str) -> bool:
        """Return True when the content document exists (False if the store is down)."""
        try:
            return content_id in self.content_store.content.exists([content_id])
        except ElearnDataError as exc:
            log.warning("content store unavailable, lesson content marked pending: %s", exc)
            return False

    def after_registration(self, user_id: uuid.UUID) -> None:
        """Apply the new user's outbox entries now (best effort: the outbox keeps them)."""
        self.process_outbox([self.router.shard_of_owner(user_id)])

    def process_outbox(self, shards: list[str] | None = None, *, limit: int = 500) -> int:
        """Apply pending content-store work recorded by PostgreSQL transactions.

        Returns the number of entries applied. Entries that fail stay pending
        (with their attempt count and last error) and are retried on the next call.
        """
        return apply_pending(self, shards or list(self.router.shards), limit=limit)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- tokens

    def _token_store(self) -> TokenStore:
        scope = _CAUSAL_SCOPE.get()
        if scope is not None and scope[0] is self:
            return scope[1]
        return self._tokens

    @property
    def token(self) -> CausalToken:
        """The causal token of every write made through this object (or this scope) so far."""
        return self._token_store().current()

    def observe(self, token: CausalToken) -> None:
        """Merge a token obtained elsewhere (e.g. from another process) into this object's.

        Inside :meth:`causal_scope` the token is merged into the scope only.
        """
        self._token_store().merge(token)

    @contextmanager
    def causal_scope(self, token: CausalToken | None = None) -> Iterator[TokenStore]:
        """Track read-your-writes per caller instead of per object, for the ``with`` block.

        Inside the block (in this thread or task, and in what it hands work to with
        its context, e.g. a server's thread pool) reads wait for ``token`` and for
        the writes made inside the block only, and those writes merge their tokens
        into the yielded store, not into the object's: one caller's writes never
        make another caller's reads wait. ``elearn serve`` opens one per request,
        with the token the client sent back.
        """
        store = TokenStore(token)
        reset = _CAUSAL_SCOPE.set((self, store))
        try:
            yield store
        finally:
            _CAUSAL_SCOPE.reset(reset)

    # -------------------------------------------------------- units of work

    def _shard(self, region_or_shard: object | None) -> str | None:
        """The scope of a unit of work: a shard, or None for a global one (routed by criteria)."""
        if region_or_shard is None:
            return None
        return self.router.resolve(region_or_shard)

    def writer(self, region_or_shard: object | None = None) -> UnitOfWork:
        """A unit of work on primaries; commits on success (atomically across shards).

        Use it as ``with db.writer(...) as uow:``. With a region or shard it is
        scoped to that shard; without, it is global (statements are routed by
        their criteria; see docs/api.md). The commit's causal token merges into
        this object's (or the current causal scope's) token.
        """
        return UnitOfWork(
            self.cluster,
            "writer",
            self._shard(region_or_shard),
            on_commit=self._token_store().merge,
        )

    def reader(
        self,
        region_or_shard: object | None = None,
        *,
        token: CausalToken | None = None,
        snapshot: bool = False,
    ) -> UnitOfWork:
        """A unit of work on replicas that have replayed ``token`` (default: this object's).

        Use it as ``with db.reader(...) as uow:``. With a region or shard it is
        scoped to that shard; without, it is global: statements are routed by
        their criteria, and SELECTs over every shard are merged exactly (or
        raise CrossShardQuery). ``snapshot=True``: one read-only REPEATABLE
        READ snapshot per shard. A pooled connection found lost is replaced
        and the read run again on a new one, once per shard.
        """
        effective = self.token if token is None else token
        return UnitOfWork(
            self.cluster, "reader", self._shard(region_or_shard), token=effective, snapshot=snapshot
        )

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


def connect(settings: Settings | None = None) -> Database:
    """Return a Database for ``settings`` (default: ELEARN_* env, .env, or the local cluster)."""
    return Database(settings if settings is not None else load_settings())
