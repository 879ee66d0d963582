"""db.payments: defaults, idempotency, one invoice under concurrency, refunds exactly once."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import InvalidInput, InvalidState, NotFound
from elearn_data.models import Invoice
from elearn_data.regions import Region
from elearn_data.sharding.merge import sum_over_shards
from tests.integration.api.helpers import published_course, register


def invoices(db: Database) -> int:
    with db.writer() as uow:
        return int(sum_over_shards(uow, select(func.count()).select_from(Invoice)))


def test_payment_methods_keep_at_most_one_default(clean: Database) -> None:
    user = register(clean, "europe")
    first = clean.payments.add_method(
        user,
        method_type="credit_card",
        card_last_four="4242",
        card_brand="Visa",
        expiry_month=12,
        expiry_year=2030,
        is_default=True,
    )
    second = clean.payments.add_method(user, method_type="paypal", is_default=True)
    methods = clean.payments.methods(user)
    assert [(m.id, m.is_default) for m in methods] == [(second, True), (first, False)]
    with pytest.raises(InvalidInput):
        clean.payments.add_method(user, method_type="credit_card")
    with pytest.raises(InvalidInput):
        clean.payments.add_method(user, method_type="debit_card", card_last_four="42x2")
    with pytest.raises(InvalidInput):
        clean.payments.add_method(user, method_type="bitcoin")
    with pytest.raises(NotFound):
        clean.payments.add_method(ids.new_id(Region.EUROPE), method_type="paypal")


def test_purchase_defaults_to_the_course_price_and_completes_with_one_invoice(
    clean: Database,
) -> None:
    course, _ = published_course(clean, price=Decimal("49.99"))
    user = register(clean, "europe")
    tx = clean.payments.create_transaction(user, course)
    view = clean.payments.get(tx)
    assert (view.amount, view.status, view.type) == (Decimal("49.99"), "pending", "purchase")
    invoice_id = clean.payments.complete(tx, gateway_transaction_id="stripe_ch_1")
    invoice = clean.payments.invoice(tx)
    assert invoice.id == invoice_id
    assert (invoice.subtotal, invoice.tax, invoice.total) == (
        Decimal("49.99"),
        Decimal("5.00"),
        Decimal("54.99"),
    )
    assert re.fullmatch(r"INV-EU-\d{4}-\d{6}", invoice.number)
    assert clean.payments.complete(tx, gateway_transaction_id="stripe_ch_1") == invoice_id
    with pytest.raises(InvalidState):
        clean.payments.complete(tx, gateway_transaction_id="stripe_ch_other")
    assert invoices(clean) == 1


def test_idempotency_key_returns_the_same_transaction(clean: Database) -> None:
    course, _ = published_course(clean)
    user = register(clean, "asia")
    a = clean.payments.create_transaction(user, course, idempotency_key="order-1")
    b = clean.payments.create_transaction(user, course, idempotency_key="order-1")
    assert a == b
    assert len(clean.payments.history(user)) == 1


def test_twenty_concurrent_completions_make_exactly_one_invoice(clean: Database) -> None:
    course, _ = published_course(clean)
    tx = clean.payments.create_transaction(register(clean, "north_america"), course)
    barrier = threading.Barrier(20)

    def complete(_: int) -> object:
        barrier.wait()
        return clean.payments.complete(tx, gateway_transaction_id="gw-20")

    with ThreadPoolExecutor(20) as pool:
        results = set(pool.map(complete, range(20)))
    assert len(results) == 1
    assert invoices(clean) == 1


def test_refund_happens_exactly_once_and_links_to_the_purchase(clean: Database) -> None:
    course, _ = published_course(clean, price=Decimal("20"))
    user = register(clean, "africa")
    tx = clean.payments.create_transaction(user, course)
    with pytest.raises(InvalidState):
        clean.payments.refund(tx)
    clean.payments.complete(tx, gateway_transaction_id="gw-r")
    refund = clean.payments.refund(tx)
    with pytest.raises(InvalidState):
        clean.payments.refund(tx)
    history = clean.payments.history(user)
    assert [t.id for t in history] == [refund, tx]
    assert (history[0].type, history[0].refund_of, history[0].amount) == (
        "refund",
        tx,
        Decimal("20.00"),
    )
    assert history[1].status == "refunded"


def test_fail_and_bad_amounts(clean: Database) -> None:
    course, _ = published_course(clean)
    free, _ = published_course(clean, price=Decimal("0"))
    user = register(clean, "oceania")
    tx = clean.payments.create_transaction(user, course, amount=Decimal("5.50"))
    clean.payments.fail(tx)
    with pytest.raises(InvalidState):
        clean.payments.fail(tx)
    with pytest.raises(InvalidState):
        clean.payments.complete(tx, gateway_transaction_id="late")
    for bad in (Decimal("0"), Decimal("-3"), Decimal("1.001"), "abc", 1.5):
        with pytest.raises(InvalidInput):
            clean.payments.create_transaction(user, course, amount=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        clean.payments.create_transaction(user, free)
    with pytest.raises(NotFound):
        clean.payments.invoice(tx)
    with pytest.raises(NotFound):
        clean.payments.create_transaction(ids.new_id(Region.ASIA), course)
