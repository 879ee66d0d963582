"""The content outbox of one shard: pending content-store work, claimed and stamped.

Rows are written by the transactions that imply the work (registration,
erasure, deleting a course or its content); :mod:`elearn_data.services.outbox`
applies them, one relayer per shard at a time (it holds the shard's relay
lock), so reading a batch takes no row locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update

from elearn_data.models import ContentOutbox
from elearn_data.sharding.unit_of_work import UnitOfWork


class OutboxRepository:
    """One shard's outbox inside a writer unit of work."""

    def __init__(self, uow: UnitOfWork, shard: str) -> None:
        self.uow = uow
        self.shard = shard

    def pending(self, limit: int) -> list[tuple[int, str, dict[str, Any], int]]:
        """Return up to ``limit`` pending entries (id, kind, payload, attempts), oldest first.

        No row locks: the caller holds the shard's relay lock, so no other
        relayer reads the same batch, and no transaction stays open while the
        content store is called.
        """
        rows = self.uow.execute(
            select(
                ContentOutbox.id, ContentOutbox.kind, ContentOutbox.payload, ContentOutbox.attempts
            )
            .where(ContentOutbox.processed_at.is_(None))
            .order_by(ContentOutbox.id)
            .limit(limit),
            shard=self.shard,
        )
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    def record_failure(self, entry_id: int, error: str) -> None:
        """Count a failed attempt and keep its error (the entry stays pending)."""
        self.uow.execute(
            update(ContentOutbox)
            .where(ContentOutbox.id == entry_id)
            .values(attempts=ContentOutbox.attempts + 1, last_error=error[:2000]),
            shard=self.shard,
        )

    def mark_processed(self, entry_ids: Sequence[int]) -> None:
        """Stamp the entries applied (``processed_at``), counting the attempt."""
        if not entry_ids:
            return
        self.uow.execute(
            update(ContentOutbox)
            .where(ContentOutbox.id.in_(entry_ids))
            .values(processed_at=func.now(), attempts=ContentOutbox.attempts + 1),
            shard=self.shard,
        )
