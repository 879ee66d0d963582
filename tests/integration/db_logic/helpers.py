"""Helpers of the database-logic tests: calls as the application role, SQLSTATE checks, factories.

Every call runs in its own transaction on a shard primary through the
application role's pool (the role the library uses), so the tests exercise the
grants env.py makes as well as the functions. Factories build users and courses
through the SQL functions themselves; catalog rows are written to the shards a
test names (default: ``eu``) with one timestamp, as the catalog writer does.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from elearn_data import ids
from elearn_data.config import with_user
from elearn_data.database import Database
from elearn_data.dberrors import constraint_name, translate
from elearn_data.errors import ElearnDataError
from elearn_data.regions import Region
from elearn_data.sharding.engines import build_engine

EU = "eu"
_counter = itertools.count(1)


def unique(prefix: str = "") -> str:
    """Return a short string no other call in this process returns."""
    return f"{prefix}{next(_counter)}{secrets.token_hex(3)}"


@contextmanager
def connection(db: Database, shard: str) -> Iterator[Connection]:
    """One transaction on the shard's primary as the application role (committed on success)."""
    with db.cluster.engines.primary(shard).engine.begin() as conn:
        yield conn


@contextmanager
def owner_connection(db: Database, shard: str) -> Iterator[Connection]:
    """One transaction on the shard's primary as the schema owner (committed on success).

    For what the application role may not do (revision 0005): change money rows
    directly, write protocol tables.
    """
    user, password = db.settings.owner_credentials()
    engine = build_engine(
        with_user(db.settings.shards[shard].primary or "", user),
        settings=db.settings,
        password=password,
        application="elearn-tests-owner",
        pooled=False,
    )
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def owner_rows(db: Database, shard: str, sql: str, **params: Any) -> list[Any]:
    """Run one statement as the schema owner; return its rows (none for DML)."""
    with owner_connection(db, shard) as conn:
        result = conn.execute(text(sql), params)
        return list(result) if result.returns_rows else []


def rows(db: Database, shard: str, sql: str, **params: Any) -> list[Any]:
    """Run one statement in its own transaction; return its rows (none for DML)."""
    with connection(db, shard) as conn:
        result = conn.execute(text(sql), params)
        return list(result) if result.returns_rows else []


def one(db: Database, shard: str, sql: str, **params: Any) -> Any:
    """Run one statement that returns exactly one row."""
    found = rows(db, shard, sql, **params)
    assert len(found) == 1, found
    return found[0]


def scalar(db: Database, shard: str, sql: str, **params: Any) -> Any:
    """Run one statement; return the first column of its one row."""
    return one(db, shard, sql, **params)[0]


@dataclass
class Raised:
    """What a failed call raised: SQLSTATE, constraint, and the translated domain error."""

    pgcode: str | None = None
    constraint: str | None = None
    error: ElearnDataError | None = None


@contextmanager
def sqlstate(
    code: str, error: type[ElearnDataError] | None = None, match: str | None = None
) -> Iterator[Raised]:
    """Expect the block to fail with SQLSTATE ``code`` (and the domain error / message given)."""
    raised = Raised()
    with pytest.raises(DBAPIError) as info:
        yield raised
    raised.pgcode = getattr(info.value.orig, "pgcode", None)
    raised.constraint = constraint_name(info.value)
    raised.error = translate(info.value)
    assert raised.pgcode == code, f"expected {code}, got {raised.pgcode}: {info.value.orig}"
    if error is not None:
        assert type(raised.error) is error, f"{type(raised.error).__name__} is not {error}"
    if match is not None:
        assert re.search(match, str(raised.error)), str(raised.error)


# --------------------------------------------------------------------- factories


def make_user(
    db: Database,
    region: Region = Region.EUROPE,
    *,
    role: str = "student",
    email: str | None = None,
) -> uuid.UUID:
    """Register a user (and profile) through create_user_with_profile; return its id."""
    shard = db.router.shard_of_region(region)
    value = scalar(
        db,
        shard,
        "SELECT create_user_with_profile(NULL, :email, 'argon2-hash', 'Ada', :last, :region,"
        " :role, 'Country', 'City', '+44 20 1234')",
        email=email or f"{unique('user')}@example.org",
        last=unique("Lovelace"),
        region=region.value,
        role=role,
    )
    return uuid.UUID(str(value))


def make_category(db: Database, shards: Sequence[str] = (EU,)) -> uuid.UUID:
    """Create a category (the same row on each shard given)."""
    category_id = ids.new_reference_id()
    name = unique("Category ")
    for shard in shards:
        rows(
            db,
            shard,
            "INSERT INTO course_categories (id, name) VALUES (:id, :name)",
            id=category_id,
            name=name,
        )
    return category_id


@dataclass
class Course:
    """A course made by :func:`make_course`."""

    id: uuid.UUID
    code: str
    modules: list[uuid.UUID] = field(default_factory=list)
    lessons: list[uuid.UUID] = field(default_factory=list)


def make_course(
    db: Database,
    shards: Sequence[str] = (EU,),
    *,
    layout: Sequence[int] = (2,),
    publish: bool = True,
    price: Decimal | int = 0,
    currency: str = "USD",
    max_enrollments: int | None = None,
    seat_ledger: bool = False,
    home: Region = Region.EUROPE,
    instructor_id: uuid.UUID | None = None,
    category_id: uuid.UUID | None = None,
    title: str | None = None,
    description: str | None = None,
    level: str = "beginner",
    at: datetime | None = None,
) -> Course:
    """Create a course on each shard given: modules with ``layout[i]`` lessons each, published.

    ``seat_ledger`` writes the ledger on the home region's shard (if it is among ``shards``).
    """
    course = Course(ids.new_reference_id(home), unique("C-").upper())
    when = at or datetime.now(UTC)
    home_shard = db.router.shard_of_region(home)
    course.modules = [ids.new_reference_id() for _ in layout]
    lesson_rows = []
    for module_id, count in zip(course.modules, layout, strict=True):
        for order in range(1, count + 1):
            lesson_id = ids.new_reference_id()
            course.lessons.append(lesson_id)
            lesson_rows.append({"id": lesson_id, "module_id": module_id, "order": order})
    for shard in shards:
        with connection(db, shard) as conn:
            conn.execute(
                text(
                    "SELECT create_course(:id, :code, :title, :instructor, :description,"
                    " :category, :level, :price, :currency, NULL, :capacity, 'English',"
                    " :ledger, :at)"
                ),
                {
                    "id": course.id,
                    "code": course.code,
                    "title": title or f"Course {course.code}",
                    "instructor": instructor_id or ids.new_id(home),
                    "description": description,
                    "category": category_id,
                    "level": level,
                    "price": Decimal(price),
                    "currency": currency,
                    "capacity": max_enrollments,
                    "ledger": seat_ledger and shard == home_shard,
                    "at": when,
                },
            )
            for order, module_id in enumerate(course.modules, start=1):
                conn.execute(
                    text(
                        "INSERT INTO course_modules (id, course_id, title, module_order,"
                        " created_at, updated_at) VALUES (:id, :course, :title, :order, :at, :at)"
                    ),
                    {
                        "id": module_id,
                        "course": course.id,
                        "title": f"Module {order}",
                        "order": order,
                        "at": when,
                    },
                )
            for lesson in lesson_rows:
                conn.execute(
                    text(
                        "INSERT INTO course_lessons (id, module_id, course_id, title,"
                        " lesson_order, lesson_type, duration_minutes, created_at, updated_at)"
                        " VALUES (:id, :module_id, :course, :title, :order, 'video', 10, :at, :at)"
                    ),
                    {
                        **lesson,
                        "course": course.id,
                        "title": f"Lesson {lesson['order']}",
                        "at": when,
                    },
                )
            if publish:
                conn.execute(text("SELECT publish_course(:id, :at)"), {"id": course.id, "at": when})
    return course


def enroll(db: Database, user_id: uuid.UUID, course_id: uuid.UUID) -> uuid.UUID:
    """Enroll a learner on their shard (no seat); return the enrollment id."""
    value = scalar(
        db,
        db.router.shard_of_owner(user_id),
        "SELECT enroll_user(NULL, :user, :course)",
        user=user_id,
        course=course_id,
    )
    return uuid.UUID(str(value))


def complete(db: Database, enrollment_id: uuid.UUID, lesson_id: uuid.UUID, minutes: int = 0) -> Any:
    """mark_lesson_complete; return (progress_percent, completed_lessons, total_lessons, status)."""
    return one(
        db,
        db.router.shard_of_owner(enrollment_id),
        "SELECT * FROM mark_lesson_complete(:e, :l, :m)",
        e=enrollment_id,
        l=lesson_id,
        m=minutes,
    )


def enrollment(db: Database, enrollment_id: uuid.UUID) -> Any:
    """The enrollment row."""
    return one(
        db,
        db.router.shard_of_owner(enrollment_id),
        "SELECT * FROM enrollments WHERE id = :id",
        id=enrollment_id,
    )


def stats(db: Database, shard: str, course_id: uuid.UUID) -> Any:
    """The shard's course_stats row of a course."""
    return one(db, shard, "SELECT * FROM course_stats WHERE course_id = :id", id=course_id)


def make_method(db: Database, user_id: uuid.UUID) -> uuid.UUID:
    """Store a card for a user; return the payment method id."""
    method_id = ids.new_id(ids.owner_region(user_id))
    rows(
        db,
        db.router.shard_of_owner(user_id),
        "INSERT INTO payment_methods (id, user_id, method_type, card_last_four, card_brand,"
        " expiry_month, expiry_year) VALUES (:id, :user, 'credit_card', '4242', 'visa', 12, 2030)",
        id=method_id,
        user=user_id,
    )
    return method_id


def purchase(
    db: Database,
    user_id: uuid.UUID,
    course_id: uuid.UUID,
    amount: Decimal | int | None = None,
    *,
    currency: str | None = None,
) -> uuid.UUID:
    """create_transaction with generated id; return the transaction id."""
    value = scalar(
        db,
        db.router.shard_of_owner(user_id),
        "SELECT create_transaction(NULL, :user, :course, :amount, NULL, :currency)",
        user=user_id,
        course=course_id,
        amount=None if amount is None else Decimal(amount),
        currency=currency,
    )
    return uuid.UUID(str(value))


def pay(db: Database, transaction_id: uuid.UUID, gateway: str | None = None) -> uuid.UUID:
    """complete_transaction with a fresh gateway id; return the invoice id."""
    value = scalar(
        db,
        db.router.shard_of_owner(transaction_id),
        "SELECT complete_transaction(:t, :g)",
        t=transaction_id,
        g=gateway or unique("gw-"),
    )
    return uuid.UUID(str(value))


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released at once; return results or exceptions."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def runner(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as exc:  # collected for the test to inspect
            results[index] = exc

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def pgcode_of(result: Any) -> str | None:
    """The SQLSTATE of a collected exception (None for a result)."""
    if isinstance(result, DBAPIError):
        return getattr(result.orig, "pgcode", None)
    return None
