"""Payment methods, transactions and invoices (learner-owned)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from elearn_data.models.base import (
    CARD_TYPES,
    INVOICE_STATUSES,
    METHOD_TYPES,
    PERSONAL,
    TRANSACTION_STATUSES,
    TRANSACTION_TYPES,
    Base,
    Placement,
    created_at,
    currency,
    money,
    one_of,
    placed,
    updated_at,
    uuid_pk,
)


class PaymentMethod(Base):
    """A stored means of payment (never a full card number)."""

    __tablename__ = "payment_methods"
    __table_args__ = (
        CheckConstraint(one_of("method_type", METHOD_TYPES), name="method_type"),
        CheckConstraint("card_last_four ~ '^[0-9]{4}$'", name="card_last_four"),
        CheckConstraint(
            f"NOT ({one_of('method_type', CARD_TYPES)}) OR card_last_four IS NOT NULL",
            name="cards_have_last_four",
        ),
        CheckConstraint("expiry_month BETWEEN 1 AND 12", name="expiry_month"),
        CheckConstraint("expiry_year BETWEEN 2000 AND 2100", name="expiry_year"),
        Index(
            "uq_payment_methods_user_id_default",
            "user_id",
            unique=True,
            postgresql_where=text("is_default"),
        ),
        Index("ix_payment_methods_user_id", "user_id"),
        placed(Placement.LEARNER, "id"),
    )

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    method_type: Mapped[str] = mapped_column(String(20))
    card_last_four: Mapped[str | None] = mapped_column(String(4), info=PERSONAL)
    card_brand: Mapped[str | None] = mapped_column(String(20))
    expiry_month: Mapped[int | None] = mapped_column(SmallInteger, info=PERSONAL)
    expiry_year: Mapped[int | None] = mapped_column(SmallInteger, info=PERSONAL)
    is_default: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class Transaction(Base):
    """A purchase or a refund; a refund links to its purchase, exactly once."""

    __tablename__ = "transactions"
    __table_args__ = (
        CheckConstraint(one_of("type", TRANSACTION_TYPES), name="type"),
        CheckConstraint(one_of("status", TRANSACTION_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
        CheckConstraint("(type = 'refund') = (refund_of IS NOT NULL)", name="refund_link"),
        CheckConstraint(
            "status NOT IN ('completed', 'refunded') OR completed_at IS NOT NULL",
            name="completed_at",
        ),
        CheckConstraint(
            "status NOT IN ('completed', 'refunded') OR type = 'refund' "
            "OR gateway_transaction_id IS NOT NULL",
            name="gateway_id_on_completion",
        ),
        UniqueConstraint("user_id", "idempotency_key"),
        Index(
            "uq_transactions_gateway_transaction_id",
            "gateway_transaction_id",
            unique=True,
            postgresql_where=text("gateway_transaction_id IS NOT NULL"),
        ),
        Index("ix_transactions_user_id_created_at", "user_id", text("created_at DESC")),
        Index("ix_transactions_course_id_status", "course_id", "status"),
        Index("ix_transactions_status_completed_at", "status", "completed_at"),
        Index("ix_transactions_payment_method_id", "payment_method_id"),
        Index(
            "ix_transactions_pending_created_at",
            "created_at",
            postgresql_where=text("status = 'pending'"),
        ),
        placed(Placement.LEARNER, "id"),
    )

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("courses.id", ondelete="RESTRICT"))
    payment_method_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payment_methods.id", ondelete="SET NULL")
    )
    amount: Mapped[money]
    currency: Mapped[currency]
    type: Mapped[str] = mapped_column(String(20), server_default="purchase")
    status: Mapped[str] = mapped_column(String(20), server_default="pending")
    gateway_transaction_id: Mapped[str | None] = mapped_column(String(100))
    refund_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("transactions.id", ondelete="RESTRICT"), unique=True
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[created_at]
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[updated_at]


class Invoice(Base):
    """The one invoice of a completed purchase."""

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint(one_of("status", INVOICE_STATUSES), name="status"),
        CheckConstraint("subtotal >= 0 AND tax >= 0", name="amounts_not_negative"),
        CheckConstraint("total = subtotal + tax", name="total_adds_up"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
        Index("ix_invoices_issued_on", "issued_on"),
        placed(Placement.LEARNER, "id"),
    )

    id: Mapped[uuid_pk]
    transaction_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("transactions.id", ondelete="RESTRICT"), unique=True
    )
    invoice_number: Mapped[str] = mapped_column(String(40), unique=True)
    subtotal: Mapped[money]
    tax: Mapped[money]
    total: Mapped[money]
    currency: Mapped[currency]
    status: Mapped[str] = mapped_column(String(20), server_default="issued")
    issued_on: Mapped[date] = mapped_column(server_default=text("CURRENT_DATE"))
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]
