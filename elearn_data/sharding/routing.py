"""Which shard(s) a row, an id or a statement belongs to.

The :class:`Router` turns placement facts into shard names:

* a region-carrying id -> its region -> the shard that serves the region;
* a catalog (reference) id -> the local shard for reads, every shard for writes;
  its home region (the instructor's) -> the shard of its seat ledger;
* an email hash -> the directory shard (hash modulo the sorted shard list).

:func:`shards_for_criteria` reads a statement's WHERE clause and returns the
shards it can be narrowed to, or ``None`` for "no narrowing criteria". The exact
rules (also in docs/architecture.md):

1. ``col == value`` and ``col IN (values)`` narrow when ``col`` is the shard key
   of its table, or -- in a learner-owned table -- any column that holds a
   learner-owned id (``id``, ``user_id``, ``enrollment_id``), or the ``region``
   column of ``users``; each value decodes to a region, hence a shard.
2. On a ``home`` table (the seat ledger) the course id names its home shard;
   on the ``directory`` table the email hash names its shard.
3. ``AND`` intersects the shard sets of its narrowing terms (terms that do not
   narrow are ignored); ``OR`` narrows only when every branch narrows (union).
4. Anything else (other operators, subqueries, functions of the column) does not
   narrow. A statement with no narrowing term runs on every shard, except one
   that reads only reference tables, which runs on the local shard.

An id that this platform did not issue names no shard: the statement is sent
nowhere and returns no rows (the caller turns that into NotFound).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ClauseElement,
    Grouping,
)

from elearn_data import ids
from elearn_data.config import Settings
from elearn_data.errors import InvalidInput, NotFound
from elearn_data.models.base import Placement, placement_of, shard_key_of
from elearn_data.regions import Region, parse_region

# Columns of learner-owned tables that hold ids carrying the owning learner's region.
OWNER_ID_COLUMNS = frozenset({"id", "user_id", "enrollment_id"})


class Router:
    """Shard arithmetic for one topology (immutable, thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        self.shards: tuple[str, ...] = settings.shard_names
        self.local_shard = settings.home_shard
        self._region_shards: dict[Region, str] = dict(settings.region_shards)

    def shard_of_region(self, region: object) -> str:
        """Return the shard serving ``region`` (a Region or its name).

        Raises:
            UnknownRegion: not a region.
        """
        return self._region_shards[parse_region(region)]

    def resolve(self, region_or_shard: object) -> str:
        """Return the shard named by a region or by a shard name."""
        if isinstance(region_or_shard, str) and region_or_shard in self.shards:
            return region_or_shard
        return self.shard_of_region(region_or_shard)

    def shard_of_owner(self, value: object) -> str:
        """Return the shard of a learner-owned id.

        Raises:
            NotFound: the id was not issued here, or is a catalog id.
            InvalidInput: not a UUID.
        """
        return self._region_shards[ids.owner_region(value)]

    def home_shard_of(self, reference_id: object) -> str:
        """Return the shard that holds a catalog entry's authoritative rows (seat ledger).

        Raises:
            NotFound: not a catalog id of ours.
        """
        decoded = ids.decode(reference_id)
        if not decoded.reference:
            raise ids.ForeignId(ids.as_uuid(reference_id), "not a catalog id")
        if decoded.region is None:
            return self.local_shard
        return self._region_shards[decoded.region]

    def directory_shard(self, email_hash: bytes) -> str:
        """Return the shard holding the directory row of ``email_hash``."""
        bucket = int.from_bytes(hashlib.blake2b(email_hash, digest_size=8).digest(), "big")
        return self.shards[bucket % len(self.shards)]

    def shards_for_ids(self, values: Iterable[object]) -> set[str]:
        """Return the shards of learner-owned ids; ids not issued here are skipped."""
        found: set[str] = set()
        for value in values:
            try:
                found.add(self.shard_of_owner(value))
            except (NotFound, InvalidInput):
                continue
        return found

    # ------------------------------------------------------------ statements

    def shards_for_criteria(
        self, where: ClauseElement | None, params: Mapping[str, Any] | None = None
    ) -> set[str] | None:
        """Return the shards a WHERE clause narrows to, or None (see module docstring)."""
        if where is None:
            return None
        return self._narrow(where, params or {})

    def _narrow(self, clause: ClauseElement, params: Mapping[str, Any]) -> set[str] | None:
        if isinstance(clause, Grouping):
            inner: Any = clause.element
            return self._narrow(inner, params)
        if isinstance(clause, BooleanClauseList):
            parts = [
                self._narrow(c, params) for c in clause.clauses if isinstance(c, ClauseElement)
            ]
            if clause.operator is operators.and_:
                narrowed = [p for p in parts if p is not None]
                if not narrowed:
                    return None
                result = set(narrowed[0])
                for p in narrowed[1:]:
                    result &= p
                return result
            if clause.operator is operators.or_:
                if any(p is None for p in parts):
                    return None
                return set().union(*(p for p in parts if p is not None))
            return None
        if isinstance(clause, BinaryExpression):
            return self._narrow_binary(clause, params)
        return None

    def _narrow_binary(
        self, clause: BinaryExpression[Any], params: Mapping[str, Any]
    ) -> set[str] | None:
        if clause.operator not in (operators.eq, operators.in_op):
            return None
        column, bind = clause.left, clause.right
        if isinstance(column, BindParameter) and isinstance(bind, Column):
            column, bind = bind, column
        if not isinstance(column, Column) or not isinstance(bind, BindParameter):
            return None
        if not isinstance(column.table, Table) or "placement" not in column.table.info:
            return None
        value = params.get(bind.key, bind.effective_value) if bind.value is None else bind.value
        if value is None:
            return None
        values = list(value) if clause.operator is operators.in_op else [value]
        return self._shards_for_column(column, values)

    def _shards_for_column(self, column: Column[Any], values: list[Any]) -> set[str] | None:
        table = column.table
        assert isinstance(table, Table)
        placement = placement_of(table)
        key = shard_key_of(table)
        if placement is Placement.LEARNER:
            if column.name == "region" and table.name == "users":
                shards: set[str] = set()
                for value in values:
                    try:
                        shards.add(self.shard_of_region(value))
                    except InvalidInput:
                        continue
                return shards
            if column.name == key or column.name in OWNER_ID_COLUMNS:
                return self.shards_for_ids(values)
            return None
        if placement is Placement.HOME and column.name == key:
            result: set[str] = set()
            for value in values:
                try:
                    result.add(self.home_shard_of(value))
                except (NotFound, InvalidInput):
                    continue
            return result
        if placement is Placement.DIRECTORY and column.name == key:
            return {
                self.directory_shard(bytes(v)) for v in values if isinstance(v, bytes | bytearray)
            }
        return None

    def identity_shards(
        self, table: Table, primary_key: tuple[Any, ...], pk_names: list[str]
    ) -> list[str]:
        """Return the shards where the row with ``primary_key`` may live."""
        placement = placement_of(table)
        key = shard_key_of(table)
        if placement is Placement.REFERENCE:
            return [self.local_shard]
        if placement is Placement.LOCAL or key is None or key not in pk_names:
            return list(self.shards)
        value = primary_key[pk_names.index(key)]
        try:
            if placement is Placement.LEARNER:
                return [self.shard_of_owner(value)]
            if placement is Placement.HOME:
                return [self.home_shard_of(value)]
        except (NotFound, InvalidInput):
            return []
        if placement is Placement.DIRECTORY and isinstance(value, bytes | bytearray):
            return [self.directory_shard(bytes(value))]
        return list(self.shards)


def tables_of(statement: Any) -> list[Table]:
    """Return the tables a statement reads or writes (best effort, for routing)."""
    found: list[Table] = []
    froms: Iterable[Any]
    table = getattr(statement, "table", None)
    if isinstance(table, Table):
        return [table]
    try:
        froms = statement.get_final_froms()
    except AttributeError:
        return found
    for item in froms:
        for element in _walk_from(item):
            if element not in found:
                found.append(element)
    return found


def _walk_from(item: Any) -> Iterable[Table]:
    if isinstance(item, Table):
        yield item
        return
    for attr in ("left", "right", "element", "original"):
        child = getattr(item, attr, None)
        if child is not None and child is not item:
            yield from _walk_from(child)
