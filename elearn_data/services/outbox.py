"""Applying the content outbox: PostgreSQL decides, MongoDB follows, idempotently.

A PostgreSQL transaction that implies content-store work (a user registered: create
their preferences; a course deleted: delete its content) writes an outbox row in
the same transaction. After the commit -- and again whenever
:meth:`Database.process_outbox` runs -- pending rows are claimed with
``FOR UPDATE SKIP LOCKED`` (concurrent processors never apply one row twice at
the same time), applied to the content store with idempotent operations, and
stamped ``processed_at``. If MongoDB fails half way, the row stays pending with
its attempt count and error, and the next run repeats the (idempotent) operation:
no dangling reference survives, and nothing is applied twice with a different
effect.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from elearn_data.errors import ElearnDataError
from elearn_data.repositories.outbox import OutboxRepository
from elearn_data.services.base import ContentSource, Units

if TYPE_CHECKING:
    from elearn_data.content import ContentStore
    from elearn_data.sharding.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


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
    """What applying the outbox needs: writer units of work and the content store."""


def apply_pending(db: OutboxHost, shards: list[str], *, limit: int = 500) -> int:
    """Apply up to ``limit`` pending outbox rows per shard; return how many were applied."""
    applied = 0
    for shard in shards:

        def work(uow: UnitOfWork, target: str = shard) -> int:
            return _apply_shard(db, uow, target, limit)

        try:
            applied += db.write(shard, work)
        except ElearnDataError as exc:
            log.warning("outbox of shard %s not processed: %s", shard, exc)
    return applied


def _apply_shard(db: OutboxHost, uow: UnitOfWork, shard: str, limit: int) -> int:
    outbox = OutboxRepository(uow, shard)
    rows = outbox.claim(limit)
    if not rows:
        return 0
    store = db.content_store
    done: list[int] = []
    for row_id, kind, payload in rows:
        try:
            HANDLERS[kind](store, payload)
        except ElearnDataError as exc:
            outbox.record_failure(row_id, str(exc))
            log.warning("outbox entry %s (%s) failed, will retry: %s", row_id, kind, exc)
            # Keep the order of work: later entries may depend on this one.
            break
        done.append(row_id)
    outbox.mark_processed(done)
    return len(done)
