"""One id code table: the database's region codes come from ``elearn_data.ids.REGION_CODES``.

Revision 0002's ``elearn_region_code`` wrote the codes 1..6 into a CASE of its
own, a second copy of the table in ``elearn_data/ids.py``. This revision adds
``elearn_region_codes()``, an IMMUTABLE function that returns the table as
jsonb (``{"north_america": 1, ...}``), generated at migration time from
``elearn_data.ids.REGION_CODES`` (bound as a parameter), and replaces
``elearn_region_code`` by a body that reads it (the same codes and the same
EL400 error, listing the regions in code order). ``elearn_new_id``,
``elearn_new_reference_id`` and every function that checks an id's region call
``elearn_region_code``, so they follow. ``tests/integration/db_logic/test_id_codec.py``
checks that Python, the numpy bulk path and the database agree on every region.

Downgrade restores 0002's ``elearn_region_code`` and drops ``elearn_region_codes``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 01:20:00.000000
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from elearn_data import ids

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQL_ROOT = Path(__file__).resolve().parent.parent / "sql"

# New functions (SQL_ROOT / "0011" / f"{name}.sql").
FUNCTIONS: tuple[str, ...] = ("elearn_region_codes",)
# Replaced in place (CREATE OR REPLACE); downgrade restores the named revision's body.
REPLACED: tuple[tuple[str, str], ...] = (("elearn_region_code", "0002"),)


def _read(folder: str, name: str) -> str:
    return (SQL_ROOT / folder / f"{name}.sql").read_text(encoding="utf-8")


def _execute(sql: str) -> None:
    # As in 0002: every colon escaped for text(), PL/pgSQL is full of them.
    op.execute(sa.text(sql.replace(":", "\\:")))


def region_codes_json() -> str:
    """Return the Python code table as the JSON object ``elearn_region_codes()`` returns."""
    return json.dumps({region.value: code for region, code in ids.REGION_CODES.items()})


def upgrade() -> None:
    # The one statement with a bind parameter (":codes"): no PL/pgSQL, no other colon.
    op.execute(sa.text(_read("0011", "elearn_region_codes")).bindparams(codes=region_codes_json()))
    for name, _previous in REPLACED:
        _execute(_read("0011", name))


def downgrade() -> None:
    for name, previous in REPLACED:
        _execute(_read(previous, name))
    for name in reversed(FUNCTIONS):
        _execute(f"DROP FUNCTION IF EXISTS {name}()")
