"""What analysts may read: tables and columns visible through ``db.analytics.sql``.

One rule, read from the models' metadata (``placed(...)`` and column ``info``),
decides both the DuckDB views an analyst queries and the column grants of the
analyst role in PostgreSQL, so a new table follows automatically:

* ``learner`` and ``home`` tables -- every shard holds different rows: visible
  as the union of all shards' rows, plus a ``shard`` column naming where each
  row lives;
* ``reference`` tables (the catalog) -- the same rows on every shard: visible
  once, read from one shard;
* ``directory`` and ``local`` tables (the email directory, the two-phase
  decision log, the outbox, per-shard partials and identity) -- protocol state,
  not visible;
* ``placed(..., analyst=False)`` hides a table whatever its placement, and a
  column declared with ``info=SECRET`` (password hashes, login counters) is
  never visible nor granted;
* a column declared with ``info=PERSONAL`` -- a direct identifier or contact
  detail of a person (email, first and last name, phone, avatar, biography,
  birth date, card details) -- is not visible either: analysts get aggregates
  and joins across learners by ``user_id``, never whom to contact. (The
  analyst role lost its grants on them with revision ``0010``;
  ``visible_tables(personal=True)`` gives the columns granted before it.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import MetaData

from elearn_data.models import Base
from elearn_data.models.base import Placement, is_personal, is_secret, placement_of

# The column every union view adds (it must not clash with a model column).
SHARD_COLUMN = "shard"

_UNION = frozenset({Placement.LEARNER, Placement.HOME})
_ONCE = frozenset({Placement.REFERENCE})


@dataclass(frozen=True)
class VisibleTable:
    """One table as analysts see it."""

    name: str
    columns: tuple[str, ...]
    # True: the union of every shard's rows (with a ``shard`` column); False: one copy.
    union: bool


def hidden_reason(column: object) -> str | None:
    """Return why analysts cannot see ``column`` (None: a visible kind of column)."""
    if is_secret(column):
        return "secret"
    if is_personal(column):
        return "personal data"
    return None


def visible_tables(
    metadata: MetaData | None = None, *, personal: bool = False
) -> tuple[VisibleTable, ...]:
    """Return every analyst-visible table with its visible columns, by table name.

    ``personal=True`` keeps the ``PERSONAL`` columns (what the analyst role was
    granted before revision 0010); secret columns are never kept.
    """
    meta = metadata if metadata is not None else Base.metadata
    found: list[VisibleTable] = []
    for table in sorted(meta.tables.values(), key=lambda t: t.name):
        if "placement" not in table.info:
            continue
        placement = placement_of(table)
        shown = table.info.get("analyst")
        if shown is None:
            shown = placement in _UNION or placement in _ONCE
        if not shown:
            continue
        columns = tuple(
            c.name for c in table.columns if not is_secret(c) and (personal or not is_personal(c))
        )
        if SHARD_COLUMN in columns:
            raise ValueError(f"table {table.name} has a column named {SHARD_COLUMN!r}")
        found.append(VisibleTable(table.name, columns, union=placement not in _ONCE))
    return tuple(found)


def restrict(
    tables: Sequence[VisibleTable], present: Mapping[str, Sequence[str]]
) -> tuple[VisibleTable, ...]:
    """Keep the tables and columns that also exist in a database (``present``: table -> columns).

    A database at an older revision lacks some; a column the models do not know
    (a newer revision) stays invisible: only what both sides name is shown.
    """
    kept: list[VisibleTable] = []
    for table in tables:
        existing = set(present.get(table.name, ()))
        columns = tuple(c for c in table.columns if c in existing)
        if columns:
            kept.append(VisibleTable(table.name, columns, table.union))
    return tuple(kept)


def hidden_columns(metadata: MetaData | None = None) -> dict[str, dict[str, str]]:
    """Return ``{column name: {table: reason}}`` of the hidden columns of visible tables.

    The analyst SQL engine names them when a query refers to one ("column
    users.email is not visible to analysts: personal data").
    """
    meta = metadata if metadata is not None else Base.metadata
    shown = {t.name for t in visible_tables(meta)}
    found: dict[str, dict[str, str]] = {}
    for table in sorted(meta.tables.values(), key=lambda t: t.name):
        if table.name not in shown:
            continue
        for column in table.columns:
            reason = hidden_reason(column)
            if reason is not None:
                found.setdefault(column.name, {})[table.name] = reason
    return found
