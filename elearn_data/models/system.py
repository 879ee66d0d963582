"""Per-shard bookkeeping: the two-phase decision log and the shard's identity."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Identity,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from elearn_data.models.base import Base, Placement, created_at, one_of, placed

OUTBOX_KINDS = ("ensure_preferences", "delete_preferences", "delete_course_content")


class TwoPhaseDecision(Base):
    """The commit decision of a multi-shard transaction, on its coordinator shard.

    The row is inserted in the coordinator's own transaction: when that commits,
    the distributed transaction is decided. Recovery commits a prepared
    participant whose gid has a ``committed`` row and rolls back the rest; it
    claims an abort by inserting ``committed = false``, which the primary key
    makes exclusive with a late coordinator.
    """

    __tablename__ = "twophase_decisions"
    __table_args__ = (
        Index("ix_twophase_decisions_created_at", "created_at"),
        placed(Placement.LOCAL),
    )

    gid: Mapped[str] = mapped_column(String(200), primary_key=True)
    committed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[created_at]


class ShardMeta(Base):
    """Key/value facts about this shard (its name, used e.g. in invoice numbers)."""

    __tablename__ = "shard_meta"
    __table_args__ = (placed(Placement.LOCAL),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ContentOutbox(Base):
    """Content-store work decided by a PostgreSQL transaction, applied afterwards.

    A row is written in the same transaction as the PostgreSQL change it follows
    from (a user registered, a course deleted), so the intent survives any
    failure of MongoDB; a processor applies it idempotently and stamps
    ``processed_at``. See docs/architecture.md, "Cross-store consistency".
    """

    __tablename__ = "content_outbox"
    __table_args__ = (
        CheckConstraint(one_of("kind", OUTBOX_KINDS), name="kind"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index(
            "ix_content_outbox_pending",
            "id",
            postgresql_where=text("processed_at IS NULL"),
        ),
        placed(Placement.LOCAL),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[created_at]
    processed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
