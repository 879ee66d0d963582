"""Which tables and columns analysts see follows from placement metadata alone."""

from __future__ import annotations

import uuid

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from elearn_data.analytics.sql import hidden_column_message
from elearn_data.analytics.visibility import (
    VisibleTable,
    hidden_columns,
    restrict,
    visible_tables,
)
from elearn_data.models.base import PERSONAL, SECRET, Placement, placed


def test_the_platform_s_tables_are_shown_by_placement_and_secrets_are_not() -> None:
    shown = {t.name: t for t in visible_tables()}
    assert shown["users"].union and "password_hash" not in shown["users"].columns
    assert {"id", "region", "role", "created_at"} <= set(shown["users"].columns)
    assert shown["enrollments"].union and shown["course_seats"].union
    assert not shown["courses"].union and not shown["course_lessons"].union
    for hidden in ("email_directory", "twophase_decisions", "content_outbox", "shard_meta"):
        assert hidden not in shown
    assert "course_stats" not in shown  # per-shard partials: enrollments answer exactly


def test_a_new_table_follows_its_placement_without_other_changes() -> None:
    class Base(DeclarativeBase):
        metadata = MetaData()

    class Ledger(Base):
        __tablename__ = "ledger"
        __table_args__ = (placed(Placement.LEARNER, "id"),)
        id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
        note: Mapped[str]
        failed_logins: Mapped[int] = mapped_column(info=SECRET)
        contact: Mapped[str] = mapped_column(info=PERSONAL)

    class Catalogue(Base):
        __tablename__ = "catalogue"
        __table_args__ = (placed(Placement.REFERENCE),)
        id: Mapped[uuid.UUID] = mapped_column(primary_key=True)

    class Bookkeeping(Base):
        __tablename__ = "bookkeeping"
        __table_args__ = (placed(Placement.LOCAL),)
        id: Mapped[int] = mapped_column(primary_key=True)

    class Throttle(Base):
        __tablename__ = "throttle"
        __table_args__ = (placed(Placement.LEARNER, "user_id", analyst=False),)
        user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)

    found = visible_tables(Base.metadata)
    assert found == (
        VisibleTable("catalogue", ("id",), union=False),
        VisibleTable("ledger", ("id", "note"), union=True),
    )


def test_only_columns_present_in_the_database_are_shown() -> None:
    tables = (VisibleTable("t", ("a", "b"), union=True), VisibleTable("gone", ("x",), False))
    assert restrict(tables, {"t": ["b", "c"]}) == (VisibleTable("t", ("b",), union=True),)


PERSONAL_COLUMNS = {
    "users": {"email", "first_name", "last_name"},
    "user_profiles": {"phone", "bio", "avatar_url", "date_of_birth"},
    "payment_methods": {"card_last_four", "expiry_month", "expiry_year"},
}


def test_personal_data_is_not_visible_and_was_granted_before_revision_0010() -> None:
    shown = {t.name: set(t.columns) for t in visible_tables()}
    before = {t.name: set(t.columns) for t in visible_tables(personal=True)}
    for table, columns in PERSONAL_COLUMNS.items():
        assert columns.isdisjoint(shown[table]), table
        assert columns <= before[table], table
        assert before[table] - shown[table] == columns, table
    assert "password_hash" not in before["users"]  # a secret stays hidden either way
    assert {"country", "city", "timezone", "language"} <= shown["user_profiles"]
    assert {"card_brand", "method_type", "user_id"} <= shown["payment_methods"]


def test_a_hidden_column_is_named_as_not_visible_to_analysts() -> None:
    hidden = hidden_columns()
    assert hidden["email"] == {"users": "personal data"}
    assert hidden["password_hash"] == {"users": "secret"}
    unqualified = 'Binder Error: Referenced column "email" not found in FROM clause!'
    message = hidden_column_message(unqualified)
    assert message is not None
    assert message.startswith("column users.email is not visible to analysts (personal data")
    qualified = 'Binder Error: Table "u" does not have a column named "phone"'
    assert "user_profiles.phone is not visible to analysts" in str(hidden_column_message(qualified))
    assert hidden_column_message('Referenced column "nonsense" not found') is None
