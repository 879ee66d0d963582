"""Declarative base, naming convention, shared column types and table placement.

Every table says where its rows live (``Table.info["placement"]``) and which
column decides the shard (``Table.info["shard_key"]``); the router in
:mod:`elearn_data.sharding.routing` reads nothing else.

* ``learner``   -- owned by one learner's region, stored only on that region's
  shard; the shard key is a region-carrying id (see :mod:`elearn_data.ids`).
* ``reference`` -- the catalog: the same rows on every shard, written to every
  primary in one two-phase commit, read on the local shard.
* ``home``      -- one authoritative row per catalog entry, on the shard of the
  entry's home region (the seat ledger of a course).
* ``directory`` -- placed by a hash of the key (the global email directory).
* ``local``     -- per-shard bookkeeping (partial aggregates, two-phase decision
  log); every statement names its shard explicitly.

What analysts may read through ``db.analytics.sql`` follows from the same
metadata (see :mod:`elearn_data.analytics.visibility`): learner, home and
reference tables are visible, directory and local ones are not; ``placed(...,
analyst=False)`` hides a table whatever its placement, and a column declared
with ``info=SECRET`` (a password hash, a login counter) is never visible, nor
is one declared with ``info=PERSONAL`` (a direct identifier or contact detail of
a person: email, names, phone, birth date; ``user_id`` still joins learners).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from sqlalchemy import (
    Date,
    DateTime,
    MetaData,
    Numeric,
    String,
    Table,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Placement(StrEnum):
    """Where a table's rows live (see the module docstring)."""

    LEARNER = "learner"
    REFERENCE = "reference"
    HOME = "home"
    DIRECTORY = "directory"
    LOCAL = "local"


class Base(DeclarativeBase):
    """Declarative base of every elearn_data table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        date: Date(),
        uuid.UUID: UUID(as_uuid=True),
        Decimal: Numeric(12, 2),
        dict[str, Any]: JSONB(),
        str: String(),
    }


# ``mapped_column(..., info=SECRET)``: a column analysts never see (nor get a grant on).
SECRET: dict[str, Any] = {"secret": True}
# ``mapped_column(..., info=PERSONAL)``: a direct identifier or contact detail of a person
# (email, name, phone, birth date, card details). Analysts get aggregates and joins
# across learners by id, never these (from revision 0010 on; see analytics/grants.py).
PERSONAL: dict[str, Any] = {"personal": True}


def placed(
    placement: Placement, shard_key: str | None = None, *, analyst: bool | None = None
) -> dict[str, Any]:
    """Return the ``__table_args__`` entry that records a table's placement.

    ``analyst`` overrides whether ``db.analytics.sql`` shows the table (None: the
    placement decides; see :mod:`elearn_data.analytics.visibility`).
    """
    info: dict[str, Any] = {"placement": placement.value, "shard_key": shard_key}
    if analyst is not None:
        info["analyst"] = analyst
    return {"info": info}


def is_secret(column: Any) -> bool:
    """Return True for a column declared with ``info=SECRET``."""
    return bool(getattr(column, "info", {}).get("secret"))


def is_personal(column: Any) -> bool:
    """Return True for a column declared with ``info=PERSONAL``."""
    return bool(getattr(column, "info", {}).get("personal"))


def placement_of(table: Table) -> Placement:
    """Return where ``table``'s rows live."""
    return Placement(table.info["placement"])


def shard_key_of(table: Table) -> str | None:
    """Return the name of the column that decides ``table``'s shard."""
    key = table.info.get("shard_key")
    return str(key) if key else None


# Shared column shapes.
uuid_pk = Annotated[uuid.UUID, mapped_column(primary_key=True)]
created_at = Annotated[datetime, mapped_column(server_default=func.now(), nullable=False)]
updated_at = Annotated[datetime, mapped_column(server_default=func.now(), nullable=False)]
money = Annotated[Decimal, mapped_column(Numeric(12, 2), nullable=False)]
currency = Annotated[str, mapped_column(String(3), nullable=False, server_default="USD")]

ROLES = ("student", "instructor", "admin")
# "erased": the personal data is gone (db.users.erase); the row keeps the pseudonymous id.
USER_STATUSES = ("active", "inactive", "suspended", "erased")
LEVELS = ("beginner", "intermediate", "advanced")
COURSE_STATUSES = ("draft", "published", "archived")
LESSON_TYPES = ("video", "reading", "quiz", "assignment")
CONTENT_STATUSES = ("none", "pending", "ready")
ENROLLMENT_STATUSES = ("active", "completed", "dropped")
METHOD_TYPES = ("credit_card", "debit_card", "paypal", "bank_transfer")
CARD_TYPES = ("credit_card", "debit_card")
TRANSACTION_TYPES = ("purchase", "refund")
TRANSACTION_STATUSES = ("pending", "completed", "failed", "refunded")
INVOICE_STATUSES = ("issued", "paid", "void")


def one_of(column: str, values: tuple[str, ...]) -> str:
    """Return a CHECK expression that keeps ``column`` inside ``values``."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"
