"""Payment methods, transactions and invoices, on the learner's shard.

The rules that must hold under concurrency live in the database functions:
``create_transaction`` (idempotency key), ``complete_transaction`` (row lock,
one invoice, idempotent per gateway id), ``refund_transaction`` (exactly once).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, text, update

from elearn_data.errors import NotFound
from elearn_data.models import Invoice, PaymentMethod, Transaction, User
from elearn_data.repositories.views import InvoiceView, PaymentMethodView, TransactionView
from elearn_data.sharding.unit_of_work import UnitOfWork

_CREATE = text(
    "SELECT create_transaction(:id, :user_id, :course_id, :amount, :payment_method_id,"
    " :currency, :idempotency_key)"
)
_COMPLETE = text("SELECT complete_transaction(:transaction_id, :gateway_id, :tax_rate)")
_FAIL = text("SELECT fail_transaction(:transaction_id)")
_REFUND = text("SELECT refund_transaction(:transaction_id, :refund_id)")

_TRANSACTION_COLUMNS = (
    Transaction.id,
    Transaction.user_id,
    Transaction.course_id,
    Transaction.amount,
    Transaction.currency,
    Transaction.type,
    Transaction.status,
    Transaction.gateway_transaction_id,
    Transaction.refund_of,
    Transaction.created_at,
    Transaction.completed_at,
)


class BillingRepository:
    """Billing rows inside one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def _shard(self, owned: uuid.UUID) -> str:
        return self.uow.router.shard_of_owner(owned)

    def add_method(self, method_id: uuid.UUID, user_id: uuid.UUID, values: dict[str, Any]) -> None:
        shard = self._shard(user_id)
        exists = self.uow.execute(
            select(User.id).where(User.id == user_id).with_for_update(), shard=shard
        ).first()
        if exists is None:
            raise NotFound(f"user {user_id} not found")
        if values.get("is_default"):
            # The user row lock above serialises concurrent "make default" calls.
            self.uow.execute(
                update(PaymentMethod)
                .where(PaymentMethod.user_id == user_id, PaymentMethod.is_default)
                .values(is_default=False),
                shard=shard,
            )
        self.uow.execute(
            insert(PaymentMethod).values(id=method_id, user_id=user_id, **values), shard=shard
        )

    def methods(self, user_id: uuid.UUID) -> list[PaymentMethodView]:
        rows = self.uow.execute(
            select(
                PaymentMethod.id,
                PaymentMethod.user_id,
                PaymentMethod.method_type,
                PaymentMethod.card_last_four,
                PaymentMethod.card_brand,
                PaymentMethod.expiry_month,
                PaymentMethod.expiry_year,
                PaymentMethod.is_default,
            )
            .where(PaymentMethod.user_id == user_id)
            .order_by(PaymentMethod.is_default.desc(), PaymentMethod.created_at),
            shard=self._shard(user_id),
        )
        return [PaymentMethodView(*row) for row in rows]

    def create_transaction(self, params: dict[str, Any]) -> uuid.UUID:
        result = self.uow.execute(_CREATE, params, shard=self._shard(params["user_id"]))
        return uuid.UUID(str(result.scalar_one()))

    def complete(self, transaction_id: uuid.UUID, gateway_id: str, tax_rate: Decimal) -> uuid.UUID:
        result = self.uow.execute(
            _COMPLETE,
            {"transaction_id": transaction_id, "gateway_id": gateway_id, "tax_rate": tax_rate},
            shard=self._shard(transaction_id),
        )
        return uuid.UUID(str(result.scalar_one()))

    def fail(self, transaction_id: uuid.UUID) -> None:
        self.uow.execute(
            _FAIL, {"transaction_id": transaction_id}, shard=self._shard(transaction_id)
        )

    def refund(self, transaction_id: uuid.UUID, refund_id: uuid.UUID) -> uuid.UUID:
        result = self.uow.execute(
            _REFUND,
            {"transaction_id": transaction_id, "refund_id": refund_id},
            shard=self._shard(transaction_id),
        )
        return uuid.UUID(str(result.scalar_one()))

    def transaction(self, transaction_id: uuid.UUID) -> TransactionView:
        row = self.uow.execute(
            select(*_TRANSACTION_COLUMNS).where(Transaction.id == transaction_id),
            shard=self._shard(transaction_id),
        ).first()
        if row is None:
            raise NotFound(f"transaction {transaction_id} not found")
        return TransactionView(*row)

    def history(self, user_id: uuid.UUID, limit: int) -> list[TransactionView]:
        rows = self.uow.execute(
            select(*_TRANSACTION_COLUMNS)
            .where(Transaction.user_id == user_id)
            .order_by(Transaction.created_at.desc(), Transaction.id.desc())
            .limit(limit),
            shard=self._shard(user_id),
        )
        return [TransactionView(*row) for row in rows]

    def invoice(self, transaction_id: uuid.UUID) -> InvoiceView:
        row = self.uow.execute(
            select(
                Invoice.id,
                Invoice.transaction_id,
                Invoice.invoice_number,
                Invoice.subtotal,
                Invoice.tax,
                Invoice.total,
                Invoice.currency,
                Invoice.status,
                Invoice.issued_on,
            ).where(Invoice.transaction_id == transaction_id),
            shard=self._shard(transaction_id),
        ).first()
        if row is None:
            raise NotFound(f"no invoice for transaction {transaction_id}")
        return InvoiceView(*row)
