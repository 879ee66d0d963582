"""Security: owner functions for what the application role may not do directly.

* ``elearn_standby_state()`` / ``elearn_replication_state()``: the replication
  facts replica choice and health need, without ``pg_monitor`` for the
  application role (the owner holds ``pg_read_all_stats``; see
  ``elearn_data/cluster/local.py``).
* ``elearn_twophase_decide`` / ``elearn_twophase_claim_abort`` /
  ``elearn_twophase_forget``: the only writes of ``twophase_decisions``.
* The money functions (``complete_transaction``, ``fail_transaction``,
  ``refund_transaction``) run as the owner: the application role may only
  INSERT and SELECT ``transactions`` and ``invoices`` (grants in alembic/env.py).
* ``login_throttles`` (consecutive failed logins per account) and the user
  status ``erased``.

Every SECURITY DEFINER function has a fixed ``search_path`` and is executable by
the roles env.py grants it to, never by PUBLIC.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-01 22:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_DIR = Path(__file__).resolve().parent.parent / "sql" / "0005"

# New owner functions (SQL_DIR / f"{name}.sql"), with their signatures.
FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("elearn_standby_state", "()"),
    ("elearn_replication_state", "()"),
    ("elearn_twophase_decide", "(text)"),
    ("elearn_twophase_claim_abort", "(text)"),
    ("elearn_twophase_forget", "(double precision, text[])"),
)

# Functions of revision 0002 that change money rows: they run as the owner now.
MONEY_FUNCTIONS: tuple[str, ...] = (
    "complete_transaction(uuid, text, numeric)",
    "fail_transaction(uuid)",
    "refund_transaction(uuid, uuid)",
)
FIXED_PATH = "SET search_path = pg_catalog, public, pg_temp"

STATUSES_BEFORE = "('active', 'inactive', 'suspended')"
STATUSES_AFTER = "('active', 'inactive', 'suspended', 'erased')"


def _execute(sql: str) -> None:
    # text(): escape colons so PL/pgSQL's ":=" and "::" never become bind parameters.
    op.execute(sa.text(sql.replace(":", "\\:")))


def _user_statuses(values: str) -> None:
    op.drop_constraint(op.f("ck_users_status"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_status"), "users", f"status IN {values}")


def upgrade() -> None:
    for name, signature in FUNCTIONS:
        _execute((SQL_DIR / f"{name}.sql").read_text(encoding="utf-8"))
        _execute(f"REVOKE ALL ON FUNCTION {name}{signature} FROM PUBLIC")
    for function in MONEY_FUNCTIONS:
        _execute(f"ALTER FUNCTION {function} SECURITY DEFINER {FIXED_PATH}")
        _execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
    op.create_table(
        "login_throttles",
        sa.Column("user_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "last_failure_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("failures >= 0", name=op.f("ck_login_throttles_failures_not_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_login_throttles_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_login_throttles")),
    )
    _user_statuses(STATUSES_AFTER)


def downgrade() -> None:
    # An erased user stays anonymous: it becomes an inactive one.
    op.execute("UPDATE users SET status = 'inactive' WHERE status = 'erased'")
    _user_statuses(STATUSES_BEFORE)
    op.drop_table("login_throttles")
    for function in MONEY_FUNCTIONS:
        _execute(f"ALTER FUNCTION {function} SECURITY INVOKER RESET search_path")
        _execute(f"GRANT EXECUTE ON FUNCTION {function} TO PUBLIC")
    for name, signature in reversed(FUNCTIONS):
        _execute(f"DROP FUNCTION IF EXISTS {name}{signature}")
