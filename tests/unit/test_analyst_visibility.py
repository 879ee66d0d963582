"""Which tables and columns analysts see follows from placement metadata alone."""

from __future__ import annotations

import uuid

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from elearn_data.analytics.visibility import VisibleTable, restrict, visible_tables
from elearn_data.models.base import SECRET, Placement, placed


def test_the_platform_s_tables_are_shown_by_placement_and_secrets_are_not() -> None:
    shown = {t.name: t for t in visible_tables()}
    assert shown["users"].union and "password_hash" not in shown["users"].columns
    assert {"id", "email", "region"} <= set(shown["users"].columns)
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
