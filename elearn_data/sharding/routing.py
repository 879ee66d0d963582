"""Which shard(s) a row, an id or a statement belongs to: the one routing rule.

The :class:`Router` turns placement facts into shard names:

* a region-carrying id -> its region -> the shard that serves the region;
* a catalog (reference) id -> the catalog shard (the local one) for reads;
  catalog rows are written to every shard, only through ``db.catalog``;
  its home region (the instructor's) -> the shard of its seat ledger;
* an email hash -> the directory shard (hash modulo the sorted shard list).

:meth:`Router.route` decides, for every statement of every unit of work (ORM
and Core alike), where it runs:

* **Scoped** (``db.reader("eu")``): on the scope's shard. Criteria or INSERT
  rows naming another shard raise :class:`~elearn_data.errors.RoutingError`.
* **Global** (``db.reader()``): by its criteria (below). A SELECT that does not
  narrow runs on every shard (merged exactly by
  :mod:`~elearn_data.sharding.crossshard`); a SELECT of catalog tables only
  runs on the catalog shard; an INSERT on the shard of each row's id/region; an
  UPDATE/DELETE of partitioned rows that does not narrow raises
  :class:`~elearn_data.errors.CrossShardQuery`. Per-shard bookkeeping tables
  and statements the router cannot read (``text()``) need a scoped unit of work
  or ``shard=``. Writes of catalog tables raise ``RoutingError`` naming
  ``db.catalog``.

:func:`shards_for_criteria` reads a statement's WHERE clause and returns the
shards it can be narrowed to, or ``None`` for "no narrowing criteria":

1. ``col == value`` and ``col IN (values)`` narrow when ``col`` is the shard key
   of its table, or -- in a learner-owned table -- any column that holds a
   learner-owned id (``id``, ``user_id``, ``enrollment_id``), or the ``region``
   column of ``users``; each value decodes to a region, hence a shard.
2. On a ``home`` table (the seat ledger) the course id names its home shard;
   on the ``directory`` table the email hash names its shard.
3. ``AND`` intersects the shard sets of its narrowing terms (terms that do not
   narrow are ignored); ``OR`` narrows only when every branch narrows (union).
4. Anything else (other operators, subqueries, functions of the column) does not
   narrow.

An id that this platform did not issue names no shard: a statement narrowed to
no shard matches no row anywhere, and runs on the catalog shard (no rows).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.dml import Delete, Insert, Update
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ClauseElement,
    Grouping,
)
from sqlalchemy.sql.selectable import Alias, CompoundSelect, Select

from elearn_data import ids
from elearn_data.config import Settings
from elearn_data.errors import CrossShardQuery, InvalidInput, NotFound, RoutingError
from elearn_data.models.base import Placement, placement_of, shard_key_of
from elearn_data.regions import Region, parse_region
from elearn_data.sharding import sqla

# Columns of learner-owned tables that hold ids carrying the owning learner's region.
OWNER_ID_COLUMNS = frozenset({"id", "user_id", "enrollment_id"})

# Placements whose rows are split between shards (each row lives on one shard).
PARTITIONED = frozenset({Placement.LEARNER, Placement.HOME, Placement.DIRECTORY})

_UNSET = object()

ANALYTICS_HINT = "use db.analytics.sql(...) for queries of any shape over every shard"
CATALOG_HINT = "catalog rows change only through db.catalog (every copy in one two-phase commit)"


def refuse(what: str) -> CrossShardQuery:
    """Return the CrossShardQuery for a statement the platform cannot answer exactly."""
    return CrossShardQuery(f"{what}: {ANALYTICS_HINT}")


class Router:
    """Shard arithmetic for one topology (immutable, thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        self.shards: tuple[str, ...] = settings.shard_names
        self.local_shard = settings.home_shard
        self._region_shards: dict[Region, str] = dict(settings.region_shards)
        # statement -> the shards its criteria name (statements without parameters).
        self._narrowed: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

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

    @property
    def catalog_shard(self) -> str:
        """The shard that answers reads of catalog (reference) rows: the local one."""
        return self.local_shard

    # ------------------------------------------------------------ statements

    def route(
        self, statement: Any, params: Any = None, scope: str | None = None
    ) -> tuple[str, ...]:
        """Return the shards ``statement`` runs on, by the one rule (see the module docstring).

        Args:
            statement: an ORM or Core statement.
            params: its execution parameters (a mapping, or a list for executemany).
            scope: the scoped unit of work's shard, or None for a global one.

        Raises:
            RoutingError: the statement cannot be placed, leaves its scope, or
                writes catalog rows.
            CrossShardQuery: an UPDATE/DELETE of partitioned rows that does not narrow.
        """
        wanted: set[str] | None
        is_insert = isinstance(statement, Insert)
        is_write = is_insert or isinstance(statement, Update | Delete)
        is_select = isinstance(statement, Select | CompoundSelect)
        if not (is_write or is_select):
            if scope is not None:
                return (scope,)
            raise RoutingError(
                f"cannot route a {type(statement).__name__} in a global unit of work (the "
                "router reads no tables from it): pass shard=..., or use a scoped unit of "
                "work such as db.reader('eu')"
            )
        tables = statement_tables(statement)
        placements = {placement_of(t) for t in tables}
        if is_write:
            written = [t for t in tables if t is getattr(statement, "table", None)]
            if any(placement_of(t) is Placement.REFERENCE for t in written):
                raise RoutingError(f"{written[0].name}: {CATALOG_HINT}")
        if Placement.LOCAL in placements:
            if scope is not None:
                return (scope,)
            local = sorted(t.name for t in tables if placement_of(t) is Placement.LOCAL)
            raise RoutingError(
                f"{', '.join(local)} is per-shard bookkeeping: name the shard "
                "(shard=..., or a scoped unit of work such as db.reader('eu'))"
            )
        partitioned = [t for t in tables if placement_of(t) in PARTITIONED]
        if is_insert:
            wanted = self._insert_shards(statement, params)
        elif partitioned:
            wanted = self._criteria_shards(statement, params)
        else:
            wanted = None
        if scope is not None:
            if wanted:
                foreign = sorted(wanted - {scope})
                if foreign:
                    raise RoutingError(
                        f"this unit of work is scoped to shard {scope!r} but the statement "
                        f"names rows of shard(s) {', '.join(foreign)}: use db.reader() / "
                        "db.writer() without an argument, or a unit of work of that shard"
                    )
            return (scope,)
        if not partitioned:
            return (self.catalog_shard,)
        if wanted is None:
            if is_write:
                names = ", ".join(sorted({t.name for t in partitioned}))
                raise CrossShardQuery(
                    f"an {type(statement).__name__.upper()} of {names} that does not narrow "
                    "to shards (by ids or users.region) would change every shard; nothing "
                    "was written. Narrow it by id, or use a scoped unit of work "
                    "(db.writer('eu')) for one shard"
                )
            return self.shards
        if not wanted:
            return (self.catalog_shard,)
        return tuple(s for s in self.shards if s in wanted)

    def _criteria_shards(self, statement: Any, params: Any) -> set[str] | None:
        if not params:
            # Without parameters the answer depends on the statement alone.
            try:
                cached = self._narrowed.get(statement, _UNSET)
            except TypeError:  # not weakly referenceable
                return self._criteria_shards_uncached(statement, params)
            if cached is _UNSET:
                cached = self._criteria_shards_uncached(statement, params)
                self._narrowed[statement] = cached
            return None if cached is None else set(cached)
        return self._criteria_shards_uncached(statement, params)

    def _criteria_shards_uncached(self, statement: Any, params: Any) -> set[str] | None:
        where = getattr(statement, "whereclause", None)
        if where is None:
            return None
        if isinstance(params, list | tuple):
            found: set[str] = set()
            for one in params or [{}]:
                narrowed = self.shards_for_criteria(where, one)
                if narrowed is None:
                    return None
                found |= narrowed
            return found
        return self.shards_for_criteria(where, params if isinstance(params, Mapping) else None)

    def split_insert(self, statement: Insert, params: Any) -> dict[str, Any]:
        """Return ``{shard: params}`` for an INSERT whose rows belong to several shards.

        Rows given as a list of parameter sets (executemany) are split by
        shard; a multi-row ``.values([...])`` spanning shards is refused.

        Raises:
            RoutingError: rows that cannot be placed or split.
        """
        table = statement.table
        assert isinstance(table, Table)
        if not isinstance(params, list | tuple) or not params:
            raise RoutingError(
                f"the rows of this INSERT INTO {table.name} belong to several shards: "
                "insert them per shard, or pass them as a list of parameter sets"
            )
        split: dict[str, list[Any]] = {}
        for one in params:
            (shard,) = self._insert_shards(statement, one)
            split.setdefault(shard, []).append(one)
        return split

    def _insert_shards(self, statement: Insert, params: Any) -> set[str]:
        table = statement.table
        assert isinstance(table, Table)
        placement = placement_of(table)
        if sqla.insert_from_select(statement) or sqla.insert_has_positional_rows(statement):
            raise RoutingError(
                f"cannot place an INSERT INTO {table.name} ... SELECT or positional VALUES: "
                "run it in a scoped unit of work (db.writer('eu')) or pass shard=..."
            )
        rows = [{_key(k): v for k, v in row.items()} for row in sqla.insert_values(statement)]
        extra: list[Mapping[str, Any]] = []
        if isinstance(params, Mapping):
            extra = [params]
        elif isinstance(params, list | tuple):
            extra = [p for p in params if isinstance(p, Mapping)]
        if extra:
            base = rows[0] if len(rows) == 1 else {}
            rows = [{**base, **{str(k): v for k, v in p.items()}} for p in extra]
        if not rows:
            rows = [{}]
        return {self._row_shard(table, placement, row) for row in rows}

    def _row_shard(self, table: Table, placement: Placement, row: Mapping[str, Any]) -> str:
        key = shard_key_of(table)
        value = _plain(row.get(key)) if key else None
        try:
            if placement is Placement.LEARNER:
                if value is not None:
                    return self.shard_of_owner(value)
                region = _plain(row.get("region")) if table.name == "users" else None
                if region is not None:
                    return self.shard_of_region(region)
            elif placement is Placement.HOME and value is not None:
                return self.home_shard_of(value)
            elif placement is Placement.DIRECTORY and isinstance(value, bytes | bytearray):
                return self.directory_shard(bytes(value))
        except (NotFound, InvalidInput) as exc:
            raise RoutingError(
                f"cannot place a row of {table.name}: {exc} (ids come from "
                "elearn_data.ids.new_id(region))"
            ) from exc
        raise RoutingError(
            f"cannot place a row of {table.name}: set {key!r} to a value "
            "(ids come from elearn_data.ids.new_id(region)), or pass shard=..."
        )

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


def refuse_catalog_write(statement: Any) -> None:
    """Raise RoutingError for an INSERT/UPDATE/DELETE of a catalog (reference) table."""
    table = getattr(statement, "table", None)
    if (
        isinstance(table, Table)
        and "placement" in table.info
        and placement_of(table) is Placement.REFERENCE
    ):
        raise RoutingError(f"{table.name}: {CATALOG_HINT}")


def _key(column: Any) -> str:
    return str(getattr(column, "key", column))


def _plain(value: Any) -> Any:
    """Return the Python value of an INSERT value (None for a SQL expression)."""
    if isinstance(value, BindParameter):
        return value.value if value.value is not None else value.effective_value
    if isinstance(value, ClauseElement):
        return None
    return value


def base_table(item: Any) -> Table | None:
    """Return the placed table behind a FROM item (a table or an alias of one)."""
    while isinstance(item, Alias):
        item = item.element
    if isinstance(item, Table) and "placement" in item.info:
        return item
    return None


# Statements are immutable: what they read is computed once per statement object
# (module-level statements are reused on every call; finding an ORM statement's
# FROM list builds a compile state, as costly as running a point read) and,
# for statements built per call with their values inline, once per shape:
# SQLAlchemy's cache key without the values (what its compiled cache is keyed
# by; sqla.shape_key) is the same for two statements only when they compile to
# the same SQL, hence read the same tables. Measured: 7-17 µs for the key
# against 160-415 µs for the walk, per statement built per call.
_TABLES: weakref.WeakKeyDictionary[Any, list[Table]] = weakref.WeakKeyDictionary()
_TABLES_BY_SHAPE: dict[Any, list[Table]] = {}
_TABLES_BY_SHAPE_MAX = 4096


def statement_tables(statement: Any) -> list[Table]:
    """Return every placed table a statement reads or writes, subqueries included."""
    try:
        cached = _TABLES.get(statement)
    except TypeError:  # not weakly referenceable
        return _tables_by_shape(statement)
    if cached is None:
        cached = _TABLES[statement] = _tables_by_shape(statement)
    return cached


def _tables_by_shape(statement: Any) -> list[Table]:
    shape = sqla.shape_key(statement)
    if shape is None:  # not cacheable (SQLAlchemy says so): walk it every time
        return _statement_tables(statement)
    found = _TABLES_BY_SHAPE.get(shape)
    if found is None:
        found = _statement_tables(statement)
        if len(_TABLES_BY_SHAPE) >= _TABLES_BY_SHAPE_MAX:
            _TABLES_BY_SHAPE.clear()
        _TABLES_BY_SHAPE[shape] = found
    return found


def _statement_tables(statement: Any) -> list[Table]:
    found: dict[str, Table] = {}
    table = getattr(statement, "table", None)
    if isinstance(table, Table) and "placement" in table.info:
        found[table.name] = table
    for element in visitors.iterate(statement):
        candidate = base_table(element)
        if candidate is None:
            candidate = base_table(getattr(element, "table", None))
        if candidate is not None:
            found.setdefault(candidate.name, candidate)
    if isinstance(statement, Select):
        for item in tables_of(statement):
            if "placement" in item.info:
                found.setdefault(item.name, item)
    return list(found.values())


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
