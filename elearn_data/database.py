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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from elearn_data import retry
from elearn_data.analytics import Analytics
from elearn_data.background import OutboxRelay, Recoverer
from elearn_data.config import Settings, load_settings
from elearn_data.content import ContentStore
from elearn_data.monitoring.metrics import Metrics
from elearn_data.services.assessments import Assessments
from elearn_data.services.billing import Payments
from elearn_data.services.catalog import Catalog
from elearn_data.services.content import Content, Preferences
from elearn_data.services.gamification import Gamification
from elearn_data.services.learning import Enrollments, Reviews
from elearn_data.services.outbox import BATCH, apply_pending, drain_shard
from elearn_data.services.users import Users
from elearn_data.sharding import twophase
from elearn_data.sharding.consistency import CausalToken, TokenStore
from elearn_data.sharding.unit_of_work import Cluster, PreparedRead, UnitOfWork, read_prepared

if TYPE_CHECKING:
    from elearn_data.health import HealthReport

log = logging.getLogger(__name__)

T = TypeVar("T")

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
        # Each service gets the parts it uses (services/base.py): this object as
        # its units of work, content source or outbox relay, the router, settings.
        router = self.router
        self.users = Users(self, router, settings, outbox=self)
        self.catalog = Catalog(self, router, content=self, outbox=self)
        self.enrollments = Enrollments(self, router)
        self.reviews = Reviews(self, router)
        self.payments = Payments(self, router, settings)
        self.assessments = Assessments(self, router, content=self)
        self.content = Content(self, router, content=self, outbox=self)
        self.preferences = Preferences(self, router, content=self)
        self.gamification = Gamification(self)
        self.analytics = Analytics(self)
        self._metrics = Metrics(self)  # after the services: it times their calls
        # Background work, never in a caller's call (see elearn_data.background):
        # connect() returns at once; the start-up recovery pass and the outbox
        # relay's first sweep run in their own threads.
        self._relay = OutboxRelay(
            self._relay_pass,
            self.router.shards,
            interval_s=settings.outbox_interval_s,
            batch=BATCH,
            enabled=settings.outbox_relay,
        )
        self._recoverer = Recoverer(
            self._recover_quietly,
            at_start=settings.recover_on_connect,
            interval_s=settings.recover_interval_s,
        )

    def _relay_pass(self, shard: str, retry_failed: bool) -> int | None:
        # The relay's own causal scope: its reads and stamps of outbox rows are not
        # this object's callers' writes, so they never make the callers' reads wait.
        with self.causal_scope():
            return drain_shard(self, shard, wait=False, retry_failed=retry_failed)

    def _recover_quietly(self) -> None:
        """Settle in-doubt two-phase transactions left by a crashed process (background)."""
        try:
            report = self._recover(wait=False)
        except Exception as exc:  # the recoverer may not die of a down shard
            log.warning("two-phase recovery failed: %s", exc)
            return
        if report.resolved:
            log.warning(
                "two-phase recovery: %d committed, %d rolled back",
                len(report.committed),
                len(report.rolled_back),
            )

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Wait for the background work requested so far: the start-up recovery pass and
        the outbox passes of the writes made through this object.

        Returns False if some of it was still running after ``timeout_s`` (or the
        outbox relay is disabled). A test or a command that needs the content
        store to reflect the writes now calls this or :meth:`process_outbox`.
        """
        recovered = self._recoverer.wait(timeout_s)
        relayed = self._relay.wait_idle(timeout_s)
        return recovered and relayed

    def recover(self, *, grace_s: float | None = None) -> twophase.RecoveryReport:
        """Resolve in-doubt prepared transactions older than ``grace_s`` (default: settings).

        Synchronous (``elearn recover``): a shard another process is recovering
        right now is waited for, then recovered by this call as well.
        """
        return self._recover(grace_s=grace_s, wait=True)

    def _recover(self, *, grace_s: float | None = None, wait: bool) -> twophase.RecoveryReport:
        grace = timedelta(seconds=self.settings.twophase_grace_s if grace_s is None else grace_s)
        report = twophase.recover(self.cluster.engines, grace=grace, wait=wait)
        if not report.unreachable:
            return report
        # A pooled connection that a failover or restart left stale fails once (its
        # pool is invalidated then): one more pass; settling is idempotent.
        again = twophase.recover(self.cluster.engines, grace=grace, wait=wait)
        return twophase.RecoveryReport(
            committed=report.committed + again.committed,
            rolled_back=report.rolled_back + again.rolled_back,
            unreachable=again.unreachable,
            busy=again.busy,
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
        self._relay.stop()
        self._recoverer.stop()
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

    def relay_outbox(self, shards: list[str], *, wait: bool = False) -> None:
        """Hand the outbox rows a committed unit of work wrote on ``shards`` to the relay.

        Returns at once (the relay applies them in its thread); with ``wait`` it
        waits (up to ``Settings.outbox_wait_s``) until the relay has passed over
        them, for calls whose contract includes the content store's side.
        """
        if not self._relay.running:  # relay disabled (Settings.outbox_relay): caller's choice
            if wait:
                apply_pending(self, shards)
            return
        self._relay.notify(shards)
        if wait:
            self._relay.wait_idle(self.settings.outbox_wait_s)

    def after_registration(self, user_id: uuid.UUID) -> None:
        """Hand the new user's outbox entry (their preferences document) to the relay."""
        self.relay_outbox([self.router.shard_of_owner(user_id)])

    def process_outbox(self, shards: list[str] | None = None, *, limit: int = BATCH) -> int:
        """Apply pending content-store work recorded by PostgreSQL transactions, now.

        First lets the relay finish the passes already asked of it, then applies
        up to ``limit`` rows per shard itself (waiting for another relayer's
        batch), retrying rows that failed before. Returns the number of entries
        this call applied. Entries that fail stay pending (with their attempt
        count and last error) and are retried by the relay's next sweep.
        """
        self._relay.wait_idle(self.settings.outbox_wait_s)
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

    def read_prepared(
        self, region_or_shard: object, query: PreparedRead, args: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        """Return the rows of one prepared read, as ``db.reader(region_or_shard)`` reads them.

        For a call that is nothing but that read (``db.users.get``): a replica
        whose pooled connection serves it is read with no unit of work built
        around it; see :func:`~elearn_data.sharding.unit_of_work.read_prepared`.
        """
        shard = self.router.resolve(region_or_shard)
        return read_prepared(self.cluster, shard, query, args, token=self.token)

    # ------------------------------------------------- one call = one UoW

    def write(self, shard: object | None, fn: Callable[[UnitOfWork], T]) -> T:
        """Run ``fn`` in a writer unit of work, retrying what provably wrote nothing.

        A dropped connection before the commit started (a stale pooled connection
        after a restart or a failover) and a concurrency conflict are retried
        (``retry.WRITES``); anything else, and any failure during the commit, is raised.
        """

        def work(attempt: retry.Attempt) -> T:
            with self.writer(shard) as uow:
                attempt.track(uow)
                return fn(uow)

        return retry.run(
            retry.WRITES,
            work,
            down_after_s=self.settings.replica.retry_down_after_s,
            what="a write",
        )


def connect(settings: Settings | None = None) -> Database:
    """Return a Database for ``settings`` (default: ELEARN_* env, .env, or the local cluster)."""
    return Database(settings if settings is not None else load_settings())
