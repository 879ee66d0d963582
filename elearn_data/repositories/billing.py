"""Payment methods, transactions and invoices, on the learner's shard.

The rules that must hold under concurrency live in the database functions:
``create_transaction`` (idempotency key), ``complete_transaction`` (row lock,
one invoice, idempotent per gateway id), ``refund_transaction`` (exactly once).
One rule spans shards: a gateway charge id completes one purchase on the whole
platform. Its directory row (``gateway_charges``, placed by a hash of the id)
is written in the same unit of work as the completion -- a two-phase commit
when the shards differ -- and a second transaction claiming the id queues on
the row's primary key and then finds it taken.
"""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from elearn_data.errors import InvalidState, NotFound
from elearn_data.models import GatewayChargeEntry, Invoice, PaymentMethod, Transaction, User
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
        """Complete the purchase and claim its gateway charge id platform-wide.

        Raises:
            NotFound: no such transaction.
            InvalidState: not completable, or the charge id completed another purchase.
        """
        result = self.uow.execute(
            _COMPLETE,
            {"transaction_id": transaction_id, "gateway_id": gateway_id, "tax_rate": tax_rate},
            shard=self._shard(transaction_id),
        )
        invoice_id = uuid.UUID(str(result.scalar_one()))
        self.claim_gateway_id(gateway_id, transaction_id)
        return invoice_id

    def claim_gateway_id(self, gateway_id: str, transaction_id: uuid.UUID) -> None:
        """Record that ``gateway_id`` paid ``transaction_id`` (idempotent for the same pair).

        Raises:
            InvalidState: the charge id completed another transaction (any shard).
        """
        digest = hashlib.sha256(gateway_id.encode()).digest()
        shard = self.uow.router.directory_shard(digest)
        # A concurrent claim of the same id waits here on the primary key until
        # the other unit of work ends, then finds its row (or takes the id).
        self.uow.execute(
            pg_insert(GatewayChargeEntry)
            .values(
                gateway_hash=digest,
                gateway_transaction_id=gateway_id,
                transaction_id=transaction_id,
            )
            .on_conflict_do_nothing(index_elements=[GatewayChargeEntry.gateway_hash]),
            shard=shard,
        )
        owner = self.uow.execute(
            select(GatewayChargeEntry.transaction_id).where(
                GatewayChargeEntry.gateway_hash == digest
            ),
            shard=shard,
        ).scalar_one()
        if owner != transaction_id:
            raise InvalidState(
                f"gateway transaction id {gateway_id!r} is already used by another transaction"
            )

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
