"""The payments phase: payment methods, transactions (purchases and refunds) and invoices.

A region's transaction budget (its share of the scale's figure, in proportion
to its enrollments in paid courses) is spent on completed purchases, refunded
purchases (two rows each: the purchase, now ``refunded``, and the ``refund``
that points at it) and failed attempts, about 87 / 5 / 8. Purchases belong to
enrollments in paid courses and happen minutes before the enrollment; refunds
prefer enrollments that were later dropped; a failed attempt precedes a paid
enrollment (the learner retried). Enrollments in paid courses without a
purchase were paid with vouchers.

Every completed or refunded purchase has one invoice, numbered as
``complete_transaction`` numbers them: ``INV-<SHARD>-<YYYY>-<nnnnnn>`` from a
per-shard counter, in completion order within a region. The loader moves each
shard's ``invoice_number_seq`` past the numbers used, so the platform's own
invoices continue the series. Tax is ``round(amount * tax_rate, 2)`` (half away
from zero) with the settings' rate; the refunded purchase's invoice is void.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

import numpy as np

from elearn_data.regions import Region
from elearn_data.seeding import columns as col
from elearn_data.seeding.plan import (
    DAY_MS,
    DROPPED,
    HOUR_MS,
    MINUTE_MS,
    WORLD_NOW_MS,
    Batch,
    World,
)
from elearn_data.seeding.scales import split_exact

METHOD_COLUMNS: Final = (
    "id",
    "user_id",
    "method_type",
    "card_last_four",
    "card_brand",
    "expiry_month",
    "expiry_year",
    "is_default",
    "created_at",
    "updated_at",
)
TRANSACTION_COLUMNS: Final = (
    "id",
    "user_id",
    "course_id",
    "payment_method_id",
    "amount",
    "currency",
    "type",
    "status",
    "gateway_transaction_id",
    "refund_of",
    "created_at",
    "completed_at",
    "updated_at",
)
INVOICE_COLUMNS: Final = (
    "id",
    "transaction_id",
    "invoice_number",
    "subtotal",
    "tax",
    "total",
    "currency",
    "status",
    "issued_on",
    "created_at",
    "updated_at",
)

METHOD_TYPES: Final = np.array([b"credit_card", b"debit_card", b"paypal", b"bank_transfer"])
METHOD_WEIGHTS: Final = np.array([0.55, 0.20, 0.20, 0.05])
CREDIT_BRANDS: Final = np.array([b"Visa", b"Mastercard", b"Amex"])
DEBIT_BRANDS: Final = np.array([b"Visa", b"Mastercard"])
FAILED_SHARE: Final = 0.08
REFUNDED_SHARE: Final = 0.05


def paid_enrollments(world: World) -> dict[Region, np.ndarray]:
    """Return, per region, the indexes of enrollments in paid courses."""
    catalog = world.must_catalog()
    return {
        region: np.flatnonzero(catalog.price_cents[world.enrollments[region].course] > 0)
        for region in world.regions
    }


def _budget(total: int, paid: int) -> tuple[int, int, int]:
    """Return (completed, refunded, failed) purchases that spend exactly ``total`` rows."""
    failed = round(total * FAILED_SHARE)
    refunded = round(total * REFUNDED_SHARE)
    completed = total - failed - 2 * refunded
    if completed + refunded > paid:  # not enough paid enrollments: fewer purchases
        refunded = min(refunded, paid)
        completed = paid - refunded
        failed = total - completed - 2 * refunded
    return completed, refunded, failed


def _tax_cents(amount_cents: np.ndarray, rate: Decimal) -> np.ndarray:
    table = {
        int(a): int((Decimal(int(a)) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        for a in np.unique(amount_cents).tolist()
    }
    return np.array([table[a] for a in amount_cents.tolist()], dtype=np.int64)


def payment_batches(world: World) -> Iterator[Batch]:
    """Yield payment methods, transactions and invoices of every region."""
    paid = paid_enrollments(world)
    budgets = split_exact(world.scale.transactions, {r: float(len(paid[r])) for r in paid})
    for region in world.regions:
        yield from _region_payments(world, region, paid[region], budgets[region])


def _region_payments(
    world: World, region: Region, paid: np.ndarray, budget: int
) -> Iterator[Batch]:
    catalog = world.must_catalog()
    plan = world.enrollments[region]
    users = world.users[region]
    rng = world.rng("payments", region)
    shard = world.shard_of(region)
    size = world.scale.batch_rows
    completed_n, refunded_n, failed_n = _budget(budget, len(paid))

    shuffled = rng.permutation(paid)
    dropped_first = shuffled[np.argsort(plan.status[shuffled] != DROPPED, kind="stable")]
    refunded = np.sort(dropped_first[:refunded_n])
    rest = shuffled[~np.isin(shuffled, refunded)]
    completed = np.sort(rest[:completed_n])
    purchases = np.concatenate([completed, refunded])
    is_refunded = np.concatenate([np.zeros(len(completed), bool), np.ones(len(refunded), bool)])
    if failed_n and len(paid):
        failed = paid[rng.integers(0, len(paid), size=failed_n)]
    else:
        failed = np.zeros(0, dtype=np.int64)
        if failed_n:  # no paid enrollment at all: attempts that never became enrollments
            raise ValueError("no paid enrollment to attach failed payments to")

    # When each purchase happened: minutes before its enrollment.
    bought = (
        plan.enrolled_ms[purchases]
        - (1 + rng.random(len(purchases)) * 9).astype(np.int64) * MINUTE_MS
    )
    settled = bought + (2_000 + rng.random(len(purchases)) * 18_000).astype(np.int64)
    order = np.argsort(settled, kind="stable")
    purchases, is_refunded = purchases[order], is_refunded[order]
    bought, settled = bought[order], settled[order]
    refund_at = settled + ((HOUR_MS + rng.random(len(purchases)) * 14 * DAY_MS).astype(np.int64))
    refund_at = np.minimum(refund_at, WORLD_NOW_MS - MINUTE_MS)
    refund_at = np.maximum(refund_at, settled + 1)
    attempt_user = plan.user[failed]
    tried = np.maximum(
        plan.enrolled_ms[failed]
        - (11 + rng.random(len(failed)) * 110).astype(np.int64) * MINUTE_MS,
        users.created_ms[attempt_user] + MINUTE_MS,
    )

    # -- payment methods: everyone who paid or tried, and some who saved a card anyway.
    payer = np.zeros(len(users.hi), dtype=bool)
    payer[plan.user[purchases]] = True
    payer[attempt_user] = True
    saver = ~payer & ~users.instructor & (rng.random(len(users.hi)) < 0.2)
    owners = np.flatnonzero(payer | saver)
    first_use = np.full(len(users.hi), WORLD_NOW_MS, dtype=np.int64)
    np.minimum.at(first_use, plan.user[purchases], bought)
    np.minimum.at(first_use, attempt_user, tried)
    extra = (rng.random(len(owners)) < 0.17).astype(np.int64) + (rng.random(len(owners)) < 0.03)
    per_owner = 1 + extra
    method_owner = np.repeat(owners, per_owner)
    n_methods = len(method_owner)
    method_rank = np.arange(n_methods) - np.repeat(np.cumsum(per_owner) - per_owner, per_owner)
    is_default = method_rank == 0
    owner_created = users.created_ms[method_owner]
    owner_first_use = first_use[method_owner]
    method_created = np.where(
        is_default,
        owner_created
        + ((owner_first_use - owner_created) * rng.random(n_methods)).astype(np.int64),
        owner_first_use
        + ((WORLD_NOW_MS - owner_first_use) * rng.random(n_methods)).astype(np.int64),
    )
    method_created = np.minimum(method_created, WORLD_NOW_MS - MINUTE_MS)
    method_hi, method_lo = col.owned_ids(region, method_created, rng)
    default_method = np.full(len(users.hi), -1, dtype=np.int64)
    default_method[method_owner[is_default]] = np.flatnonzero(is_default)
    kind = rng.choice(len(METHOD_TYPES), size=n_methods, p=METHOD_WEIGHTS)
    card = kind < 2
    brand = np.where(
        kind == 0,
        CREDIT_BRANDS[rng.choice(3, size=n_methods, p=[0.5, 0.35, 0.15])],
        DEBIT_BRANDS[rng.integers(0, 2, size=n_methods)],
    )
    last_four = rng.integers(0, 10_000, size=n_methods)
    expiry_month = rng.integers(1, 13, size=n_methods)
    expiry_year = rng.integers(2026, 2032, size=n_methods)

    def method_id(index: np.ndarray) -> col.Binary:
        return col.Binary.uuid(method_hi[index], method_lo[index])

    def user_id(index: np.ndarray) -> col.Binary:
        return col.Binary.uuid(users.hi[index], users.lo[index])

    def course_id(enrollment: np.ndarray) -> col.Binary:
        courses = plan.course[enrollment]
        return col.Binary.uuid(catalog.course_hi[courses], catalog.course_lo[courses])

    for start in range(0, n_methods, size):
        s = slice(start, min(start + size, n_methods))
        n = s.stop - s.start
        yield Batch(
            shard,
            "payment_methods",
            METHOD_COLUMNS,
            col.binary_rows(
                [
                    col.Binary.uuid(method_hi[s], method_lo[s]),
                    user_id(method_owner[s]),
                    col.Binary("text", METHOD_TYPES[kind[s]]),
                    col.Binary("text", np.strings.zfill(last_four[s].astype(str), 4), card[s]),
                    col.Binary("text", brand[s], card[s]),
                    col.Binary("int2", expiry_month[s], card[s]),
                    col.Binary("int2", expiry_year[s], card[s]),
                    col.Binary("bool", is_default[s]),
                    col.Binary("timestamptz", method_created[s]),
                    col.Binary("timestamptz", method_created[s]),
                ]
            ),
            n,
            binary=True,
        )

    # -- purchases (completed or refunded), then refunds, then failed attempts.
    n_purchases = len(purchases)
    purchase_hi, purchase_lo = col.owned_ids(region, bought, rng)
    amount = catalog.price_cents[plan.course[purchases]]
    buyer = plan.user[purchases]
    buyer_method = default_method[buyer]
    refund_index = np.flatnonzero(is_refunded)
    refund_hi, refund_lo = col.owned_ids(region, refund_at[refund_index], rng)
    failed_hi, failed_lo = col.owned_ids(region, tried, rng)
    failed_method = default_method[attempt_user]
    statuses = np.array([b"completed", b"refunded"])
    for start in range(0, n_purchases, size):
        s = slice(start, min(start + size, n_purchases))
        n = s.stop - s.start
        refunded_here = is_refunded[s]
        gateway = np.strings.add(b"gw_", col.hex_ids(purchase_hi[s], purchase_lo[s]).astype("S32"))
        yield Batch(
            shard,
            "transactions",
            TRANSACTION_COLUMNS,
            col.binary_rows(
                [
                    col.Binary.uuid(purchase_hi[s], purchase_lo[s]),
                    user_id(buyer[s]),
                    course_id(purchases[s]),
                    method_id(buyer_method[s]),
                    col.Binary("numeric2", amount[s]),
                    col.Binary.constant("USD", n),
                    col.Binary.constant("purchase", n),
                    col.Binary("text", statuses[refunded_here.astype(np.int64)]),
                    col.Binary("text", gateway),
                    col.Binary.uuid(purchase_hi[s], purchase_lo[s], np.zeros(n, dtype=bool)),
                    col.Binary("timestamptz", bought[s]),
                    col.Binary("timestamptz", settled[s]),
                    col.Binary("timestamptz", np.where(refunded_here, refund_at[s], settled[s])),
                ]
            ),
            n,
            advance=n,
            binary=True,
        )
    for start in range(0, len(refund_index), size):
        s = slice(start, min(start + size, len(refund_index)))
        n = s.stop - s.start
        index = refund_index[s]
        when = refund_at[index]
        yield Batch(
            shard,
            "transactions",
            TRANSACTION_COLUMNS,
            col.binary_rows(
                [
                    col.Binary.uuid(refund_hi[s], refund_lo[s]),
                    user_id(buyer[index]),
                    course_id(purchases[index]),
                    method_id(buyer_method[index]),
                    col.Binary("numeric2", amount[index]),
                    col.Binary.constant("USD", n),
                    col.Binary.constant("refund", n),
                    col.Binary.constant("completed", n),
                    col.Binary.constant("-", n).null(),
                    col.Binary.uuid(purchase_hi[index], purchase_lo[index]),
                    col.Binary("timestamptz", when),
                    col.Binary("timestamptz", when),
                    col.Binary("timestamptz", when),
                ]
            ),
            n,
            advance=n,
            binary=True,
        )
    for start in range(0, len(failed), size):
        s = slice(start, min(start + size, len(failed)))
        n = s.stop - s.start
        yield Batch(
            shard,
            "transactions",
            TRANSACTION_COLUMNS,
            col.binary_rows(
                [
                    col.Binary.uuid(failed_hi[s], failed_lo[s]),
                    user_id(attempt_user[s]),
                    course_id(failed[s]),
                    method_id(failed_method[s]),
                    col.Binary("numeric2", catalog.price_cents[plan.course[failed[s]]]),
                    col.Binary.constant("USD", n),
                    col.Binary.constant("purchase", n),
                    col.Binary.constant("failed", n),
                    col.Binary.constant("-", n).null(),
                    col.Binary.uuid(failed_hi[s], failed_lo[s], np.zeros(n, dtype=bool)),
                    col.Binary("timestamptz", tried[s]),
                    col.Binary("timestamptz", tried[s], np.zeros(n, dtype=bool)),
                    col.Binary("timestamptz", tried[s] + 5_000),
                ]
            ),
            n,
            advance=n,
            binary=True,
        )

    # -- invoices: one per completed or refunded purchase, numbered in completion order.
    tax = _tax_cents(amount, world.tax_rate)
    first = world.invoice_counters.get(shard, 0) + 1
    world.invoice_counters[shard] = first + n_purchases - 1
    prefix = f"INV-{shard.upper()}-".encode("ascii")
    invoice_hi, invoice_lo = col.owned_ids(region, settled, rng)
    invoice_statuses = np.array([b"paid", b"void"])
    for start in range(0, n_purchases, size):
        s = slice(start, min(start + size, n_purchases))
        n = s.stop - s.start
        refunded_here = is_refunded[s]
        year = np.strings.slice(col.dates(settled[s]), 0, 4).astype("S4")
        sequence = np.strings.zfill(np.arange(first + s.start, first + s.stop).astype("S20"), 6)
        number = np.strings.add(np.strings.add(prefix, np.strings.add(year, b"-")), sequence)
        yield Batch(
            shard,
            "invoices",
            INVOICE_COLUMNS,
            col.binary_rows(
                [
                    col.Binary.uuid(invoice_hi[s], invoice_lo[s]),
                    col.Binary.uuid(purchase_hi[s], purchase_lo[s]),
                    col.Binary("text", number),
                    col.Binary("numeric2", amount[s]),
                    col.Binary("numeric2", tax[s]),
                    col.Binary("numeric2", amount[s] + tax[s]),
                    col.Binary.constant("USD", n),
                    col.Binary("text", invoice_statuses[refunded_here.astype(np.int64)]),
                    col.Binary("date", settled[s]),
                    col.Binary("timestamptz", settled[s]),
                    col.Binary("timestamptz", np.where(refunded_here, refund_at[s], settled[s])),
                ]
            ),
            n,
            binary=True,
        )
