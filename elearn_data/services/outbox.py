"""Applying the content outbox: PostgreSQL decides, MongoDB follows, idempotently.

A PostgreSQL transaction that implies content-store work (a user registered: create
their preferences; a course deleted: delete its content) writes an outbox row in
the same transaction. After the commit the caller notifies its Database's outbox
relay (:class:`elearn_data.background.OutboxRelay`), which applies the rows in
its own thread -- the caller's call never applies rows, its own or anyone
else's -- and :meth:`Database.process_outbox` applies them synchronously. One
relayer per shard at a time, across processes: a pass holds the shard's
session-level advisory lock :data:`RELAY_LOCK_KEY` (the relay skips a shard
whose lock is taken, ``process_outbox`` waits for it), so rows are applied in
their order, with no transaction open while MongoDB is called: the batch is
read in one unit of work, applied to the content store with idempotent
operations, and stamped ``processed_at`` in another. If MongoDB fails half way,
the row stays pending with its attempt count and error, and the relay's next
sweep (or ``process_outbox``) repeats the (idempotent) operation: no dangling
reference survives, and nothing is applied twice with a different effect.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from elearn_data.errors import ElearnDataError
from elearn_data.repositories.outbox import OutboxRepository
from elearn_data.services.base import ContentSource, Units
from elearn_data.sharding.locks import shard_lock

if TYPE_CHECKING:
    from elearn_data.content import ContentStore
    from elearn_data.sharding.unit_of_work import Cluster, UnitOfWork

log = logging.getLogger(__name__)

# The session-level advisory lock (on each shard primary) that one outbox pass
# holds from reading its batch to stamping it: "elearnob" (sharding/locks.py).
RELAY_LOCK_KEY = 0x656C6561726E6F62
# Rows one pass applies at most (the relay goes on with the next batch at once).
BATCH = 500


def _ensure_preferences(store: ContentStore, payload: dict[str, Any]) -> None:
    store.preferences.ensure(uuid.UUID(payload["user_id"]))


def _delete_preferences(store: ContentStore, payload: dict[str, Any]) -> None:
    store.preferences.delete(uuid.UUID(payload["user_id"]))


def _delete_course_content(store: ContentStore, payload: dict[str, Any]) -> None:
    store.content.delete_for_course(uuid.UUID(payload["course_id"]))


HANDLERS: dict[str, Callable[[ContentStore, dict[str, Any]], None]] = {
    "ensure_preferences": _ensure_preferences,
    "delete_preferences": _delete_preferences,
    "delete_course_content": _delete_course_content,
}


class OutboxHost(Units, ContentSource, Protocol):
    """What applying the outbox needs: writer units of work, the content store and
    the cluster (whose primaries hold the relay locks)."""

    @property
    def cluster(self) -> Cluster: ...


def apply_pending(db: OutboxHost, shards: list[str], *, limit: int = BATCH) -> int:
    """Apply up to ``limit`` pending outbox rows per shard now; return how many were applied.

    Waits for the shard's relay lock (another relayer's batch finishes first) and
    retries rows that failed before.
    """
    applied = 0
    for shard in shards:
        try:
            applied += drain_shard(db, shard, limit=limit, wait=True, retry_failed=True) or 0
        except ElearnDataError as exc:
            log.warning("outbox of shard %s not processed: %s", shard, exc)
    return applied


def drain_shard(
    db: OutboxHost, shard: str, *, limit: int = BATCH, wait: bool, retry_failed: bool
) -> int | None:
    """Apply one batch of ``shard``'s pending rows while holding its relay lock.

    Returns how many rows were applied, or None when ``wait`` is False and
    another relayer holds the lock. With ``retry_failed`` False the batch stops
    at the first row that failed before (it is left for a sweep). No
    transaction stays open while the content store is called: the rows are read
    in one unit of work and stamped in another, and the lock (held by a
    connection of its own, outside any transaction) keeps other relayers out
    in between.
    """
    with shard_lock(
        db.cluster.engines.primary(shard).engine, RELAY_LOCK_KEY, wait=wait, shard=shard
    ) as held:
        if held is None:
            return None
        return _apply_shard(db, shard, limit, retry_failed=retry_failed)


def _apply_shard(db: OutboxHost, shard: str, limit: int, *, retry_failed: bool) -> int:
    rows = db.write(shard, lambda uow: OutboxRepository(uow, shard).pending(limit))
    if not rows:
        return 0
    store = db.content_store
    done: list[int] = []
    failed: tuple[int, str] | None = None
    for row_id, kind, payload, attempts in rows:
        if attempts and not retry_failed:
            break  # failed before: a sweep retries it, and the rows after it wait in order
        try:
            HANDLERS[kind](store, payload)
        except ElearnDataError as exc:
            failed = (row_id, str(exc))
            log.warning("outbox entry %s (%s) failed, will retry: %s", row_id, kind, exc)
            # Keep the order of work: later entries may depend on this one.
            break
        done.append(row_id)

    def stamp(uow: UnitOfWork) -> None:
        outbox = OutboxRepository(uow, shard)
        outbox.mark_processed(done)
        if failed is not None:
            outbox.record_failure(*failed)

    if done or failed is not None:
        db.write(shard, stamp)
    return len(done)
