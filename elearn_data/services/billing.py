"""``db.payments``: payment methods, idempotent transactions, invoices, refunds."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

from elearn_data import ids, validation
from elearn_data.config import Settings
from elearn_data.errors import InvalidInput
from elearn_data.models.base import CARD_TYPES, METHOD_TYPES
from elearn_data.repositories.billing import BillingRepository
from elearn_data.repositories.views import InvoiceView, PaymentMethodView, TransactionView
from elearn_data.services.base import Units
from elearn_data.services.catalog import catalog_id
from elearn_data.services.learning import owned_id
from elearn_data.sharding.routing import Router

LAST_FOUR = re.compile(r"[0-9]{4}", re.ASCII)


class Payments:
    """The payments part of the API (``settings`` gives the tax rate of invoices)."""

    def __init__(self, units: Units, router: Router, settings: Settings) -> None:
        self._units = units
        self._router = router
        self._settings = settings

    def _shard(self, owned: uuid.UUID) -> str:
        return self._router.shard_of_owner(owned)

    def add_method(
        self,
        user_id: uuid.UUID,
        *,
        method_type: str,
        card_last_four: str | None = None,
        card_brand: str | None = None,
        expiry_month: int | None = None,
        expiry_year: int | None = None,
        is_default: bool = False,
    ) -> uuid.UUID:
        """Store a payment method (at most one default per user); return its id.

        Raises:
            NotFound: no such user.
            InvalidInput: unknown method type, a card without its last four digits,
                a bad expiry.
        """
        user = owned_id("user_id", user_id)
        kind = validation.choice("method_type", method_type, METHOD_TYPES)
        last_four = validation.text("card_last_four", card_last_four, max_length=4, required=False)
        if last_four is not None and not LAST_FOUR.fullmatch(last_four):
            raise InvalidInput(f"card_last_four must be 4 digits: {card_last_four!r}")
        if kind in CARD_TYPES and last_four is None:
            raise InvalidInput(f"a {kind} needs card_last_four")
        values: dict[str, Any] = {
            "method_type": kind,
            "card_last_four": last_four,
            "card_brand": validation.text("card_brand", card_brand, max_length=20, required=False),
            "expiry_month": validation.integer(
                "expiry_month", expiry_month, minimum=1, maximum=12, required=False
            ),
            "expiry_year": validation.integer(
                "expiry_year", expiry_year, minimum=2000, maximum=2100, required=False
            ),
            "is_default": validation.flag("is_default", is_default),
        }
        method_id = ids.new_id(ids.owner_region(user))
        self._units.write(
            self._shard(user),
            lambda uow: BillingRepository(uow).add_method(method_id, user, values),
        )
        return method_id

    def methods(self, user_id: uuid.UUID) -> list[PaymentMethodView]:
        """Return the user's payment methods, default first."""
        user = owned_id("user_id", user_id)
        with self._units.reader(self._shard(user)) as uow:
            return BillingRepository(uow).methods(user)

    def create_transaction(
        self,
        user_id: uuid.UUID,
        course_id: uuid.UUID,
        *,
        amount: Decimal | None = None,
        payment_method_id: uuid.UUID | None = None,
        currency: str = "USD",
        idempotency_key: str | None = None,
    ) -> uuid.UUID:
        """Create a pending purchase; return its id (the same id for the same idempotency key).

        ``amount`` defaults to the course price (in the course's currency).

        Raises:
            NotFound: no such user, course or payment method.
            InvalidInput: amount <= 0 (including a free course without an amount).
            InvalidState: the idempotency key was used for another course or amount.
        """
        user = owned_id("user_id", user_id)
        course = catalog_id("course_id", course_id)
        clean_amount = validation.money(
            "amount", amount, minimum=Decimal("0"), exclusive_minimum=True, required=False
        )
        clean_currency = validation.currency("currency", currency)
        params = {
            "id": ids.new_id(ids.owner_region(user)),
            "user_id": user,
            "course_id": course,
            "amount": clean_amount,
            "payment_method_id": None
            if payment_method_id is None
            else owned_id("payment_method_id", payment_method_id),
            # The course's own currency applies when the amount is the course price.
            "currency": clean_currency if clean_amount is not None else None,
            "idempotency_key": validation.text(
                "idempotency_key", idempotency_key, max_length=100, required=False
            ),
        }
        return self._units.write(
            self._shard(user), lambda uow: BillingRepository(uow).create_transaction(params)
        )

    def complete(self, transaction_id: uuid.UUID, *, gateway_transaction_id: str) -> uuid.UUID:
        """Complete a pending purchase and issue its one invoice; return the invoice id.

        Repeating the call with the same gateway id returns the same invoice.

        Raises:
            NotFound: no such transaction.
            InvalidState: failed or refunded, or completed with another gateway id,
                or the gateway id completed another purchase (in any region).
        """
        tid = owned_id("transaction_id", transaction_id)
        gateway = validation.required_text(
            "gateway_transaction_id", gateway_transaction_id, max_length=100
        )
        rate = self._settings.tax_rate
        return self._units.write(
            self._shard(tid), lambda uow: BillingRepository(uow).complete(tid, gateway, rate)
        )

    def fail(self, transaction_id: uuid.UUID) -> None:
        """Mark a pending transaction failed. Raises NotFound, InvalidState (not pending)."""
        tid = owned_id("transaction_id", transaction_id)
        self._units.write(self._shard(tid), lambda uow: BillingRepository(uow).fail(tid))

    def refund(self, transaction_id: uuid.UUID) -> uuid.UUID:
        """Refund a completed purchase exactly once; return the refund transaction's id.

        Raises:
            NotFound: no such transaction.
            InvalidState: not a completed purchase (e.g. refunded already).
        """
        tid = owned_id("transaction_id", transaction_id)
        refund_id = ids.new_id(ids.owner_region(tid))
        return self._units.write(
            self._shard(tid), lambda uow: BillingRepository(uow).refund(tid, refund_id)
        )

    def get(self, transaction_id: uuid.UUID) -> TransactionView:
        """Return one transaction. Raises NotFound."""
        tid = owned_id("transaction_id", transaction_id)
        with self._units.reader(self._shard(tid)) as uow:
            return BillingRepository(uow).transaction(tid)

    def history(self, user_id: uuid.UUID, limit: int = 50) -> list[TransactionView]:
        """Return the user's transactions, newest first."""
        user = owned_id("user_id", user_id)
        clean_limit = validation.required_integer("limit", limit, minimum=1, maximum=1000)
        with self._units.reader(self._shard(user)) as uow:
            return BillingRepository(uow).history(user, clean_limit)

    def invoice(self, transaction_id: uuid.UUID) -> InvoiceView:
        """Return the invoice of a transaction. Raises NotFound."""
        tid = owned_id("transaction_id", transaction_id)
        with self._units.reader(self._shard(tid)) as uow:
            return BillingRepository(uow).invoice(tid)
