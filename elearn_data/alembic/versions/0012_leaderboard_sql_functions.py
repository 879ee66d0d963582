"""The leaderboard's per-shard part as SQL functions PostgreSQL inlines.

Revision 0009's ``get_points_leaders(since, course, region, limit, min)`` is
PL/pgSQL: every call runs its query into a tuplestore and reads it back, on a
plan of its own, which cost several times the query (0.15 ms against 0.03 ms
for the top 10 of 333 000 summary rows, ``EXPLAIN ANALYZE`` on a replica), and
a global leaderboard pays it on every shard at once. Its ``min`` argument served
a threshold round the merge no longer needs (a learner's points live on one
shard). It is replaced by two ``LANGUAGE sql`` functions, one SELECT each,
which the planner inlines into the calling statement:

* ``get_points_leaders_all(region, limit)``: the summary rows (all time);
* ``get_points_leaders_since(since, course, region, limit)``: the ledger, since
  a time and/or in one course.

Same columns, order and ties as before. Downgrade drops both and restores
0009's function.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 07:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_ROOT = Path(__file__).resolve().parent.parent / "sql"

# New functions (SQL_ROOT / "0012" / f"{name}.sql"), with their signatures.
FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("get_points_leaders_all", "(text, int)"),
    ("get_points_leaders_since", "(timestamptz, uuid, text, int)"),
)
# Dropped here; downgrade restores 0009's body.
REPLACED = ("get_points_leaders", "(timestamptz, uuid, text, int, bigint)", "0009")


def _execute(sql: str) -> None:
    # As in 0002: every colon escaped for text() (casts are "::").
    op.execute(sa.text(sql.replace(":", "\\:")))


def upgrade() -> None:
    name, signature, _previous = REPLACED
    _execute(f"DROP FUNCTION {name}{signature}")
    for function, _signature in FUNCTIONS:
        _execute((SQL_ROOT / "0012" / f"{function}.sql").read_text(encoding="utf-8"))


def downgrade() -> None:
    for function, signature in reversed(FUNCTIONS):
        _execute(f"DROP FUNCTION IF EXISTS {function}{signature}")
    name, _signature, previous = REPLACED
    _execute((SQL_ROOT / previous / f"{name}.sql").read_text(encoding="utf-8"))
