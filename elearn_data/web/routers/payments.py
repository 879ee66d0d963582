"""``/v1/payments``: the caller's purchases."""

from __future__ import annotations

from fastapi import APIRouter

from elearn_data.repositories.views import TransactionView
from elearn_data.web.deps import Caller, Worker
from elearn_data.web.schemas import PaymentIn, TransactionCreated, TransactionOut, list_of

router = APIRouter(tags=["payments"])


@router.post("/v1/payments", status_code=201, response_model=TransactionCreated)
def create_payment(body: PaymentIn, state: Worker, who: Caller) -> TransactionCreated:
    """Start a purchase of a course at its price (the same idempotency key, the same id)."""
    transaction_id = state.db.payments.create_transaction(
        who.user_id,
        body.course_id,
        payment_method_id=body.payment_method_id,
        idempotency_key=body.idempotency_key,
    )
    return TransactionCreated(transaction_id=transaction_id)


@router.get("/v1/payments", response_model=list_of(TransactionOut))
def history(state: Worker, who: Caller, limit: int = 50) -> list[TransactionView]:
    """The caller's transactions, newest first."""
    return state.db.payments.history(who.user_id, limit)
