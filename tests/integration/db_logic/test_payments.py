"""Payment functions on the learner's shard: transactions, invoices, refunds, history."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import InvalidInput, InvalidState, NotFound
from elearn_data.regions import Region
from tests.integration.db_logic.helpers import (
    EU,
    make_course,
    make_method,
    make_user,
    one,
    pay,
    pgcode_of,
    purchase,
    rows,
    run_together,
    scalar,
    sqlstate,
    unique,
)

CREATE = "SELECT create_transaction(:id, :u, :c, :amount, :method, :currency, :key)"


def _create(db: Database, user: object, course: object, **overrides: object) -> Any:
    params: dict[str, object] = {
        "id": None,
        "u": user,
        "c": course,
        "amount": None,
        "method": None,
        "currency": None,
        "key": None,
    }
    params.update(overrides)
    return scalar(db, EU, CREATE, **params)


def _tx(db: Database, tid: object) -> Any:
    return one(db, EU, "SELECT * FROM transactions WHERE id = :t", t=tid)


def test_create_transaction_defaults_to_the_course_price_and_currency(db: Database) -> None:
    course = make_course(db, price=Decimal("49.99"), currency="EUR")
    user = make_user(db)
    method = make_method(db, user)
    tid = _create(db, user, course.id, method=method)
    assert ids.owner_region(tid) is Region.EUROPE
    tx = _tx(db, tid)
    assert (tx.amount, tx.currency, tx.type, tx.status) == (
        Decimal("49.99"),
        "EUR",
        "purchase",
        "pending",
    )
    assert tx.payment_method_id == method
    explicit = _tx(db, _create(db, user, course.id, amount=Decimal("5.005"), currency="usd"))
    assert (explicit.amount, explicit.currency) == (Decimal("5.01"), "USD")


def test_create_transaction_for_a_free_course_without_an_amount_is_invalid(db: Database) -> None:
    course = make_course(db, price=0)
    with sqlstate("EL400", InvalidInput, match="is free"):
        _create(db, make_user(db), course.id)


@pytest.mark.parametrize("amount", [Decimal(0), Decimal("-5"), Decimal("0.001")])
def test_create_transaction_rejects_a_non_positive_amount(db: Database, amount: Decimal) -> None:
    course = make_course(db, price=10)
    with sqlstate("EL400", InvalidInput, match="amount must be positive"):
        _create(db, make_user(db), course.id, amount=amount)


def test_create_transaction_with_another_users_payment_method_is_not_found(db: Database) -> None:
    course = make_course(db, price=10)
    someone_else = make_method(db, make_user(db))
    with sqlstate("EL404", NotFound, match=f"payment method {someone_else} not found for user"):
        _create(db, make_user(db), course.id, method=someone_else)


def test_create_transaction_for_a_missing_user_or_course_is_not_found(db: Database) -> None:
    course = make_course(db, price=10)
    with sqlstate("EL404", NotFound, match="user"):
        _create(db, ids.new_id(Region.EUROPE), course.id)
    with sqlstate("EL404", NotFound, match="course"):
        _create(db, make_user(db), ids.new_reference_id())


def test_create_transaction_rejects_a_bad_currency_and_an_id_of_another_region(
    db: Database,
) -> None:
    course, user = make_course(db, price=10), make_user(db)
    with sqlstate("EL400", InvalidInput, match="invalid currency code 'euro'"):
        _create(db, user, course.id, currency="euro")
    with sqlstate("EL400", InvalidInput, match="does not carry the learner's region"):
        _create(db, user, course.id, id=ids.new_id(Region.ASIA))


def test_the_same_idempotency_key_returns_the_same_transaction(db: Database) -> None:
    course, user = make_course(db, price=10), make_user(db)
    key = unique("key-")
    first = _create(db, user, course.id, key=key)
    assert _create(db, user, course.id, key=key, id=ids.new_id(Region.EUROPE)) == first
    assert scalar(db, EU, "SELECT count(*) FROM transactions WHERE user_id = :u", u=user) == 1
    # The key is per learner.
    assert _create(db, make_user(db), course.id, key=key) != first


def test_a_reused_idempotency_key_for_another_purchase_is_an_invalid_state(db: Database) -> None:
    course, other, user = make_course(db, price=10), make_course(db, price=10), make_user(db)
    key = unique("key-")
    _create(db, user, course.id, key=key)
    with sqlstate("EL409", InvalidState, match=f"idempotency key '{key}' was already used"):
        _create(db, user, other.id, key=key)
    with sqlstate("EL409", InvalidState):
        _create(db, user, course.id, key=key, amount=Decimal("11"))


def test_concurrent_creations_with_one_idempotency_key_make_one_transaction(
    db: Database,
) -> None:
    course, user = make_course(db, price=10), make_user(db)
    key = unique("key-")
    results = run_together(12, lambda _: _create(db, user, course.id, key=key))
    assert not [r for r in results if isinstance(r, Exception)]
    assert len(set(results)) == 1
    assert scalar(db, EU, "SELECT count(*) FROM transactions WHERE user_id = :u", u=user) == 1


def test_complete_transaction_issues_one_paid_invoice_with_tax_and_a_shard_number(
    db: Database,
) -> None:
    course, user = make_course(db, price=Decimal("19.99"), currency="GBP"), make_user(db)
    tid = purchase(db, user, course.id)
    invoice_id = pay(db, tid, "gw-abc-" + unique())
    invoice = one(db, EU, "SELECT * FROM invoices WHERE id = :i", i=invoice_id)
    assert invoice.transaction_id == tid
    assert (invoice.subtotal, invoice.tax, invoice.total, invoice.currency, invoice.status) == (
        Decimal("19.99"),
        Decimal("2.00"),
        Decimal("21.99"),
        "GBP",
        "paid",
    )
    year = datetime.now(UTC).year
    assert re.fullmatch(rf"INV-EU-{year}-\d{{6,}}", invoice.invoice_number)
    assert ids.owner_region(invoice_id) is Region.EUROPE
    tx = _tx(db, tid)
    assert tx.status == "completed" and tx.completed_at is not None


def test_complete_transaction_uses_the_given_tax_rate(db: Database) -> None:
    tid = purchase(db, make_user(db), make_course(db, price=Decimal("10.05")).id)
    invoice = scalar(db, EU, "SELECT complete_transaction(:t, :g, 0.2)", t=tid, g=unique("gw"))
    tax, total = one(db, EU, "SELECT tax, total FROM invoices WHERE id = :i", i=invoice)
    assert (tax, total) == (Decimal("2.01"), Decimal("12.06"))


def test_completing_with_another_gateway_id_is_an_invalid_state(db: Database) -> None:
    tid = purchase(db, make_user(db), make_course(db, price=10).id)
    pay(db, tid, "gw-one-" + unique())
    with sqlstate("EL409", InvalidState, match="already completed with gateway transaction"):
        pay(db, tid, "gw-two-" + unique())


def test_completing_a_failed_or_refunded_transaction_or_a_refund_is_an_invalid_state(
    db: Database,
) -> None:
    course, user = make_course(db, price=10), make_user(db)
    failed = purchase(db, user, course.id)
    rows(db, EU, "SELECT fail_transaction(:t)", t=failed)
    with sqlstate("EL409", InvalidState, match="is failed"):
        pay(db, failed)
    refunded = purchase(db, user, course.id)
    gateway = unique("gw-")
    pay(db, refunded, gateway)
    refund = scalar(db, EU, "SELECT refund_transaction(:t)", t=refunded)
    with sqlstate("EL409", InvalidState, match="is refunded"):
        pay(db, refunded, gateway)
    with sqlstate("EL409", InvalidState, match="is a refund"):
        pay(db, refund)


@pytest.mark.parametrize(
    ("gateway", "rate", "message"),
    [
        ("", Decimal("0.1"), "gateway transaction id must have 1 to 100 characters"),
        (None, Decimal("0.1"), "gateway transaction id"),
        ("g" * 101, Decimal("0.1"), "gateway transaction id"),
        ("gw", Decimal("-0.1"), "tax rate must be between 0 and 1"),
        ("gw", Decimal("1.5"), "tax rate must be between 0 and 1"),
        ("gw", None, "tax rate must be between 0 and 1: NULL"),
    ],
)
def test_complete_transaction_rejects_bad_input(
    db: Database, gateway: str | None, rate: Decimal | None, message: str
) -> None:
    tid = purchase(db, make_user(db), make_course(db, price=10).id)
    with sqlstate("EL400", InvalidInput, match=message):
        scalar(db, EU, "SELECT complete_transaction(:t, :g, :r)", t=tid, g=gateway, r=rate)
    assert _tx(db, tid).status == "pending"


def test_complete_transaction_of_a_missing_transaction_is_not_found(db: Database) -> None:
    with sqlstate("EL404", NotFound):
        pay(db, ids.new_id(Region.EUROPE))


def test_a_gateway_id_used_by_another_transaction_is_an_invalid_state(db: Database) -> None:
    course, user = make_course(db, price=10), make_user(db)
    gateway = unique("gw-")
    pay(db, purchase(db, user, course.id), gateway)
    with sqlstate("EL409", InvalidState, match=f"gateway transaction id '{gateway}'"):
        pay(db, purchase(db, user, course.id), gateway)


def test_twenty_concurrent_completions_make_exactly_one_invoice(db: Database) -> None:
    tid = purchase(db, make_user(db), make_course(db, price=10).id)
    gateway = unique("gw-")
    results = run_together(20, lambda _: pay(db, tid, gateway))
    assert not [r for r in results if isinstance(r, Exception)]
    assert len(set(results)) == 1
    assert scalar(db, EU, "SELECT count(*) FROM invoices WHERE transaction_id = :t", t=tid) == 1


def test_concurrent_completions_with_different_gateway_ids_let_one_win(db: Database) -> None:
    tid = purchase(db, make_user(db), make_course(db, price=10).id)
    results = run_together(10, lambda i: pay(db, tid, unique(f"gw{i}-")))
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert [pgcode_of(r) for r in results if isinstance(r, Exception)] == ["EL409"] * 9
    assert scalar(db, EU, "SELECT count(*) FROM invoices WHERE transaction_id = :t", t=tid) == 1


def test_fail_transaction_only_from_pending(db: Database) -> None:
    course, user = make_course(db, price=10), make_user(db)
    tid = purchase(db, user, course.id)
    rows(db, EU, "SELECT fail_transaction(:t)", t=tid)
    assert _tx(db, tid).status == "failed"
    with sqlstate("EL409", InvalidState, match="is failed; only a pending transaction can fail"):
        rows(db, EU, "SELECT fail_transaction(:t)", t=tid)
    paid = purchase(db, user, course.id)
    pay(db, paid)
    with sqlstate("EL409", InvalidState, match="is completed"):
        rows(db, EU, "SELECT fail_transaction(:t)", t=paid)
    with sqlstate("EL404", NotFound):
        rows(db, EU, "SELECT fail_transaction(:t)", t=ids.new_id(Region.EUROPE))


def test_refund_transaction_links_a_refund_and_voids_the_invoice(db: Database) -> None:
    course, user = make_course(db, price=Decimal("30.00")), make_user(db)
    tid = purchase(db, user, course.id)
    invoice = pay(db, tid)
    wanted = ids.new_id(Region.EUROPE)
    assert scalar(db, EU, "SELECT refund_transaction(:t, :r)", t=tid, r=wanted) == wanted
    refund = _tx(db, wanted)
    assert (refund.type, refund.status, refund.amount, refund.refund_of) == (
        "refund",
        "completed",
        Decimal("30.00"),
        tid,
    )
    assert refund.completed_at is not None
    assert _tx(db, tid).status == "refunded"
    assert scalar(db, EU, "SELECT status FROM invoices WHERE id = :i", i=invoice) == "void"


def test_refund_transaction_refunds_only_a_completed_purchase_once(db: Database) -> None:
    course, user = make_course(db, price=10), make_user(db)
    pending = purchase(db, user, course.id)
    with sqlstate("EL409", InvalidState, match="is pending; only a completed purchase"):
        scalar(db, EU, "SELECT refund_transaction(:t)", t=pending)
    pay(db, pending)
    refund = scalar(db, EU, "SELECT refund_transaction(:t)", t=pending)
    with sqlstate("EL409", InvalidState, match="already refunded"):
        scalar(db, EU, "SELECT refund_transaction(:t)", t=pending)
    with sqlstate("EL409", InvalidState, match="is a refund"):
        scalar(db, EU, "SELECT refund_transaction(:t)", t=refund)
    with sqlstate("EL404", NotFound):
        scalar(db, EU, "SELECT refund_transaction(:t)", t=ids.new_id(Region.EUROPE))


def test_concurrent_refunds_succeed_exactly_once(db: Database) -> None:
    tid = purchase(db, make_user(db), make_course(db, price=10).id)
    pay(db, tid)
    results = run_together(10, lambda _: scalar(db, EU, "SELECT refund_transaction(:t)", t=tid))
    assert sum(1 for r in results if not isinstance(r, Exception)) == 1
    assert [pgcode_of(r) for r in results if isinstance(r, Exception)] == ["EL409"] * 9
    assert scalar(db, EU, "SELECT count(*) FROM transactions WHERE refund_of = :t", t=tid) == 1


def test_get_user_transactions_lists_newest_first_with_invoices(db: Database) -> None:
    course, user = make_course(db, price=10), make_user(db)
    first = purchase(db, user, course.id)
    invoice = pay(db, first)
    second = purchase(db, user, course.id, Decimal("3"))
    listed = rows(db, EU, "SELECT * FROM get_user_transactions(:u)", u=user)
    assert [r.transaction_id for r in listed] == [second, first]
    assert (listed[1].invoice_id, listed[1].invoice_status, listed[1].course_code) == (
        invoice,
        "paid",
        course.code,
    )
    assert listed[0].invoice_id is None and listed[0].amount == Decimal("3.00")
    assert len(rows(db, EU, "SELECT * FROM get_user_transactions(:u, 1)", u=user)) == 1
    assert len(rows(db, EU, "SELECT * FROM get_user_transactions(:u, NULL)", u=user)) == 2
    with sqlstate("EL400", InvalidInput):
        rows(db, EU, "SELECT * FROM get_user_transactions(:u, 0)", u=user)
    with sqlstate("EL404", NotFound):
        rows(db, EU, "SELECT * FROM get_user_transactions(:u)", u=ids.new_id(Region.EUROPE))
