"""Search finds every course by its own code.

``courses.search_vector`` indexes ``code`` with the ``simple`` configuration,
but ``search_courses`` parsed the query with ``english`` only, so a code whose
letters stem differently (``AWS-101`` asks for ``aw``) was never found. The new
``search_courses`` (``elearn_data/alembic/sql/0006/search_courses.sql``) ORs the query
parsed with ``english`` and with ``simple``. Downgrade restores 0002's function.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01 22:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_ROOT = Path(__file__).resolve().parent.parent / "sql"


def _execute(sql: str) -> None:
    # As in 0002: every colon escaped for text(), PL/pgSQL is full of them.
    op.execute(sa.text(sql.replace(":", "\\:")))


def upgrade() -> None:
    _execute((SQL_ROOT / "0006" / "search_courses.sql").read_text(encoding="utf-8"))


def downgrade() -> None:
    _execute((SQL_ROOT / "0002" / "search_courses.sql").read_text(encoding="utf-8"))
