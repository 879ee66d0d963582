"""Global invariants: a platform-wide gateway charge directory; capacities set globally.

* ``gateway_charges``: which transaction a gateway charge id completed, placed
  by a hash of the id like the email directory, so one charge id completes one
  purchase on the whole platform (written with the purchase's completion).
* ``complete_transaction``: a reused gateway id is an invalid state (EL409,
  what the API lists for ``complete``), no longer a duplicate (EL412).
* ``set_course_capacity``: refuses to give a capacity to a course that had
  none (its ledger never counted the enrollments made meanwhile);
  ``db.catalog.set_capacity`` counts them on every shard.

SQL of the functions: ``alembic/sql/0004/<name>.sql``; downgrade restores the
0002 versions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL = Path(__file__).resolve().parent.parent / "sql"
FUNCTIONS: tuple[str, ...] = ("complete_transaction", "set_course_capacity")


def _execute(sql: str) -> None:
    # Colons in PL/pgSQL are not bind parameters (see 0002_functions._execute).
    op.execute(sa.text(sql.replace(":", "\\:")))


def upgrade() -> None:
    op.create_table(
        "gateway_charges",
        sa.Column("gateway_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("gateway_transaction_id", sa.String(length=100), nullable=False),
        sa.Column("transaction_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "octet_length(gateway_hash) = 32", name=op.f("ck_gateway_charges_hash_length")
        ),
        sa.PrimaryKeyConstraint("gateway_hash", name=op.f("pk_gateway_charges")),
    )
    for name in FUNCTIONS:
        _execute((SQL / "0004" / f"{name}.sql").read_text(encoding="utf-8"))


def downgrade() -> None:
    for name in FUNCTIONS:
        _execute((SQL / "0002" / f"{name}.sql").read_text(encoding="utf-8"))
    op.drop_table("gateway_charges")
