"""Exact answers to a SELECT that runs on several shards: a parallel fan-out and a merge.

A global unit of work sends a SELECT of partitioned rows that does not narrow to
one shard to every shard it may touch, in parallel, and merges the partial
results into exactly what one database holding every shard would return:

* **Rows** (no aggregates): concatenated. With ORDER BY the per-shard ordered
  streams are k-way merged (the sort keys travel as extra columns); with LIMIT n
  OFFSET m each shard is asked for its first n + m rows, and the merge skips m
  and keeps n. DISTINCT removes rows that several shards returned.
* **Aggregates** ``count``/``sum``/``min``/``max``/``avg``, with or without
  GROUP BY: each shard returns per-group partials (``avg`` as ``sum`` and
  ``count``: never an average of averages), merged by group key; HAVING, ORDER
  BY, DISTINCT, LIMIT and OFFSET are then applied to the merged groups. An
  ``avg`` is divided with PostgreSQL's own numeric scale rule, so the digits are
  the ones one database would print.
* **Joins** in which every partitioned table is joined on its owning learner's
  key (learner rows are co-located; catalog tables are on every shard).

Everything else that would need rows of several shards at once raises
:class:`~elearn_data.errors.CrossShardQuery` naming ``db.analytics.sql``:
joins between two learners' rows, window functions, subqueries or CTEs over
partitioned rows, set operations, other aggregates (``count(DISTINCT ...)``,
``string_agg``, ...), DISTINCT ON, and non-integer LIMIT/OFFSET.

Comparisons in the merge are Python's; they agree with PostgreSQL's for the
types the schema uses because every database is created with the C collation
(``initdb --no-locale``): strings sort by code point, NULLs last ascending and
first descending, as PostgreSQL does by default.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import operator
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Result, Select, func
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import (
    BinaryExpression,
    BindParameter,
    BooleanClauseList,
    ColumnElement,
    False_,
    FunctionFilter,
    Grouping,
    Label,
    Null,
    Over,
    True_,
    UnaryExpression,
    WithinGroup,
    _label_reference,
    _textual_label_reference,
)
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import Alias, CompoundSelect, Join, ScalarSelect, SelectBase

from elearn_data.dberrors import translate
from elearn_data.models.base import Placement, placement_of, shard_key_of
from elearn_data.sharding import sqla
from elearn_data.sharding.routing import (
    OWNER_ID_COLUMNS,
    PARTITIONED,
    base_table,
    refuse,
    statement_tables,
)

if TYPE_CHECKING:
    from elearn_data.sharding.unit_of_work import UnitOfWork

T = TypeVar("T")

MERGEABLE = frozenset({"count", "sum", "min", "max", "avg"})
# PostgreSQL's built-in aggregates (pg_aggregate) that have no exact merge here.
OTHER_AGGREGATES = frozenset(
    {
        "any_value",
        "array_agg",
        "bit_and",
        "bit_or",
        "bit_xor",
        "bool_and",
        "bool_or",
        "corr",
        "covar_pop",
        "covar_samp",
        "cume_dist",
        "dense_rank",
        "every",
        "grouping",
        "json_agg",
        "json_object_agg",
        "jsonb_agg",
        "jsonb_object_agg",
        "mode",
        "percent_rank",
        "percentile_cont",
        "percentile_disc",
        "range_agg",
        "range_intersect_agg",
        "rank",
        "regr_avgx",
        "regr_avgy",
        "regr_count",
        "regr_intercept",
        "regr_r2",
        "regr_slope",
        "regr_sxx",
        "regr_sxy",
        "regr_syy",
        "stddev",
        "stddev_pop",
        "stddev_samp",
        "string_agg",
        "var_pop",
        "var_samp",
        "variance",
        "xmlagg",
    }
)

_COMPARE: dict[Any, Callable[[Any, Any], Any]] = {
    operators.eq: operator.eq,
    operators.ne: operator.ne,
    operators.lt: operator.lt,
    operators.le: operator.le,
    operators.gt: operator.gt,
    operators.ge: operator.ge,
    operators.add: operator.add,
    operators.sub: operator.sub,
    operators.mul: operator.mul,
}

# ------------------------------------------------------------------ parallel


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
FAN_OUT_THREADS = 16


def _pool() -> ThreadPoolExecutor:
    global _POOL  # noqa: PLW0603 -- one pool per process, created on first use
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(FAN_OUT_THREADS, thread_name_prefix="elearn-fanout")
        return _POOL


def in_parallel(fn: Callable[[str], T], shards: Sequence[str]) -> list[T]:
    """Return ``[fn(shard) for shard in shards]``, the shards queried at the same time.

    The first shard runs in the calling thread. Every call finishes before
    this returns (no thread still uses a connection when the caller rolls
    back); the first failure, in shard order, is raised.
    """
    if len(shards) == 1:
        return [fn(shards[0])]
    pool = _pool()
    futures: list[Future[T]] = [pool.submit(fn, shard) for shard in shards[1:]]
    outcomes: list[tuple[bool, Any]] = []
    try:
        outcomes.append((True, fn(shards[0])))
    except BaseException as exc:  # re-raised below, after the other shards are done
        outcomes.append((False, exc))
    for future in futures:
        try:
            outcomes.append((True, future.result()))
        except BaseException as exc:
            outcomes.append((False, exc))
    for ok, value in outcomes:
        if not ok:
            raise value
    return [value for _, value in outcomes]


# -------------------------------------------------------------------- sorting


@dataclass(frozen=True)
class SortKey:
    """One ORDER BY term: its expression, direction and NULL placement."""

    expression: Any
    descending: bool
    nulls_first: bool


def _sort_keys(statement: Select[Any]) -> list[SortKey]:
    keys: list[SortKey] = []
    for element in sqla.order_by(statement):
        descending = False
        nulls: bool | None = None
        expr = element
        while True:
            if isinstance(expr, _label_reference):
                expr = expr.element
            elif isinstance(expr, UnaryExpression) and expr.modifier in (
                operators.desc_op,
                operators.asc_op,
                operators.nulls_first_op,
                operators.nulls_last_op,
            ):
                if expr.modifier is operators.desc_op:
                    descending = True
                elif expr.modifier is operators.nulls_first_op and nulls is None:
                    nulls = True
                elif expr.modifier is operators.nulls_last_op and nulls is None:
                    nulls = False
                expr = expr.element
            else:
                break
        if isinstance(expr, _textual_label_reference):
            name = str(expr.element)
            if name not in statement.selected_columns:
                raise refuse(f"ORDER BY {name!r} names no selected column")
            expr = statement.selected_columns[name]
        keys.append(SortKey(expr, descending, descending if nulls is None else nulls))
    return keys


def _compare_values(a: Any, b: Any, key: SortKey) -> int:
    if a is None or b is None:
        if a is None and b is None:
            return 0
        # NULL sorts first when nulls_first, last otherwise (independent of direction).
        null_first = -1 if a is None else 1
        return null_first if key.nulls_first else -null_first
    if a == b:
        return 0
    less = a < b
    result = -1 if less else 1
    return -result if key.descending else result


def _row_comparator(
    keys: Sequence[SortKey], value_of: Callable[[Any, int], Any]
) -> Callable[[Any], Any]:
    def compare(x: Any, y: Any) -> int:
        for index, key in enumerate(keys):
            outcome = _compare_values(value_of(x, index), value_of(y, index), key)
            if outcome:
                return outcome
        return 0

    return functools.cmp_to_key(compare)


# ------------------------------------------------------------ numeric division

_NUMERIC_MIN_SIG_DIGITS = 16
_NUMERIC_MAX_DISPLAY_SCALE = 1000


def _weight_and_first_digit(value: Decimal) -> tuple[int, int]:
    """Return PostgreSQL's base-10000 weight and leading digit of a numeric."""
    if value == 0:
        return 0, 0
    magnitude = abs(value)
    weight = magnitude.adjusted() // 4
    first = int(magnitude.scaleb(-4 * weight))
    return weight, first


def _dscale(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def pg_numeric_div(dividend: Decimal | int, divisor: Decimal | int) -> Decimal:
    """Return ``dividend / divisor`` as PostgreSQL's numeric division prints it.

    The result scale is PostgreSQL's ``select_div_scale`` (at least 16
    significant digits, at least the inputs' scales) and the last digit is
    rounded half away from zero, as ``numeric_div`` does (so ``avg`` merged
    from sums and counts equals ``avg`` on one database, digit for digit).
    """
    num = Decimal(dividend)
    den = Decimal(divisor)
    w1, f1 = _weight_and_first_digit(num)
    w2, f2 = _weight_and_first_digit(den)
    qweight = w1 - w2
    if f1 <= f2:
        qweight -= 1
    rscale = _NUMERIC_MIN_SIG_DIGITS - qweight * 4
    rscale = max(rscale, _dscale(num), _dscale(den), 0)
    rscale = min(rscale, _NUMERIC_MAX_DISPLAY_SCALE)
    # Exact integer arithmetic: round(num / den * 10^rscale) half away from zero.
    n_sign, n_digits, n_exp = num.as_tuple()
    d_sign, d_digits, d_exp = den.as_tuple()
    assert isinstance(n_exp, int) and isinstance(d_exp, int)
    n_int = int("".join(map(str, n_digits)) or "0")
    d_int = int("".join(map(str, d_digits)) or "0")
    shift = n_exp + rscale - d_exp
    top = n_int * 10**shift if shift >= 0 else n_int
    bottom = d_int if shift >= 0 else d_int * 10 ** (-shift)
    quotient, remainder = divmod(top, bottom)
    if 2 * remainder >= bottom:
        quotient += 1
    negative = (n_sign != d_sign) and quotient != 0
    return Decimal((1 if negative else 0, tuple(int(c) for c in str(quotient)), -rscale))


# ------------------------------------------------------------------ analysis


def _is_aggregate(element: Any) -> str | None:
    if isinstance(element, FunctionElement):
        name = str(getattr(element, "name", "")).lower()
        if name in MERGEABLE or name in OTHER_AGGREGATES:
            return name
    return None


def _check_shape(statement: Any) -> None:
    """Refuse what has no exact merge (see the module docstring)."""
    if isinstance(statement, CompoundSelect):
        raise refuse("a UNION/INTERSECT/EXCEPT over learner-owned rows of several shards")
    if not isinstance(statement, Select):
        raise refuse(f"a {type(statement).__name__} over several shards")
    if sqla.ctes(statement):
        raise refuse("a WITH (CTE) query over learner-owned rows of several shards")
    _, distinct_on = sqla.distinct(statement)
    if distinct_on:
        raise refuse("DISTINCT ON over learner-owned rows of several shards")
    try:
        sqla.limit_and_offset(statement)
    except SQLAlchemyError as exc:
        raise refuse("a LIMIT/OFFSET that is not a plain integer, over several shards") from exc
    for element in visitors.iterate(statement):
        if element is statement:
            continue
        if isinstance(element, Over):
            raise refuse("a window function over learner-owned rows of several shards")
        if isinstance(element, FunctionFilter | WithinGroup):
            raise refuse("an aggregate with FILTER or WITHIN GROUP over several shards")
        if isinstance(element, SelectBase | ScalarSelect):
            inner = element.element if isinstance(element, ScalarSelect) else element
            if any(placement_of(t) in PARTITIONED for t in statement_tables(inner)):
                raise refuse("a subquery of learner-owned rows, over several shards")
        name = _is_aggregate(element)
        if name is not None:
            if name not in MERGEABLE:
                raise refuse(f"the aggregate {name}() over learner-owned rows of several shards")
            for arg in element.clauses:  # type: ignore[attr-defined]
                if isinstance(arg, UnaryExpression) and arg.operator is operators.distinct_op:
                    raise refuse(f"{name}(DISTINCT ...) over learner-owned rows of several shards")
    _check_colocated(statement)


def _from_key(item: Any) -> tuple[str, str] | None:
    if isinstance(item, Alias):
        return ("alias", str(item.name))
    table = base_table(item)
    return None if table is None else ("table", table.name)


def _owner_columns(table: Any) -> frozenset[str]:
    placement = placement_of(table)
    key = shard_key_of(table)
    names = {key} if key else set()
    if placement is Placement.LEARNER:
        for column in table.columns:
            if column.name in OWNER_ID_COLUMNS:
                names.add(column.name)
            for fk in column.foreign_keys:
                target = fk.column.table
                if "placement" in target.info and placement_of(target) is Placement.LEARNER:
                    names.add(column.name)
    return frozenset(n for n in names if n)


def _check_colocated(statement: Select[Any]) -> None:
    """Refuse a join whose partitioned tables are not all joined on the owning learner's key."""
    instances: dict[tuple[str, str], Any] = {}
    conditions: list[Any] = []

    def walk(item: Any) -> None:
        if isinstance(item, Join):
            walk(item.left)
            walk(item.right)
            if item.onclause is not None:
                conditions.append(item.onclause)
            return
        table = base_table(item)
        if table is None:
            if isinstance(item, Alias | SelectBase) and any(
                placement_of(t) in PARTITIONED for t in statement_tables(item)
            ):
                raise refuse("a derived table of learner-owned rows, over several shards")
            return
        key = _from_key(item)
        if key is not None and placement_of(table) in PARTITIONED:
            instances[key] = table

    for item in statement.get_final_froms():
        walk(item)
    if len(instances) <= 1:
        return
    if statement.whereclause is not None:
        conditions.append(statement.whereclause)
    parent = {key: key for key in instances}

    def find(key: tuple[str, str]) -> tuple[str, str]:
        while parent[key] != key:
            key = parent[key]
        return key

    for condition in conditions:
        for left, right in _equalities(condition):
            a, b = _from_key(left.table), _from_key(right.table)
            if a not in instances or b not in instances or a is None or b is None:
                continue
            ta, tb = instances[a], instances[b]
            if placement_of(ta) is not placement_of(tb):
                continue
            if left.name in _owner_columns(ta) and right.name in _owner_columns(tb):
                parent[find(a)] = find(b)
    if len({find(key) for key in instances}) > 1:
        names = ", ".join(sorted(t.name for t in instances.values()))
        raise refuse(
            f"a join of {names} that is not on the owning learner's key (rows of "
            "different learners live on different shards)"
        )


def _equalities(condition: Any) -> Iterable[tuple[Any, Any]]:
    if isinstance(condition, Grouping):
        yield from _equalities(condition.element)
    elif isinstance(condition, BooleanClauseList) and condition.operator is operators.and_:
        for clause in condition.clauses:
            yield from _equalities(clause)
    elif isinstance(condition, BinaryExpression) and condition.operator is operators.eq:
        left, right = condition.left, condition.right
        if hasattr(left, "table") and hasattr(right, "table") and hasattr(left, "name"):
            yield left, right


def _has_aggregates(statement: Select[Any]) -> bool:
    if sqla.group_by(statement) or sqla.having(statement):
        return True
    for column in statement.selected_columns:
        for element in visitors.iterate(column):
            if _is_aggregate(element) is not None:
                return True
    return False


# ---------------------------------------------------------------------- plans


@dataclass
class RowsPlan:
    """Concatenate, or k-way merge by sort keys carried as extra columns; then DISTINCT/slice."""

    statement: Select[Any]
    width: int
    keys: list[SortKey]
    distinct: bool
    limit: int | None
    offset: int

    @classmethod
    def build(cls, statement: Select[Any]) -> RowsPlan:
        keys = _sort_keys(statement)
        limit, offset = sqla.limit_and_offset(statement)
        width = len(statement.column_descriptions)
        shard_statement = statement
        if keys:
            shard_statement = shard_statement.add_columns(
                *(_unlabel(k.expression).label(f"_elearn_key{i}") for i, k in enumerate(keys))
            )
        if limit is not None or offset:
            per_shard = None if limit is None else limit + offset
            shard_statement = shard_statement.limit(per_shard).offset(None)
        is_distinct, _ = sqla.distinct(statement)
        return cls(shard_statement, width, keys, is_distinct, limit, offset)

    def merge(self, parts: list[list[Any]]) -> list[Any]:
        rows: Iterable[Any]
        if self.keys:
            width = self.width
            comparator = _row_comparator(self.keys, lambda row, i: row[width + i])
            rows = heapq.merge(*parts, key=comparator)
        else:
            rows = itertools.chain.from_iterable(parts)
        if self.distinct:
            rows = _unique(rows, self.width)
        stop = None if self.limit is None else self.offset + self.limit
        return list(itertools.islice(rows, self.offset, stop))


def _unique(rows: Iterable[Any], width: int) -> Iterator[Any]:
    seen: set[tuple[Any, ...]] = set()
    for row in rows:
        visible = tuple(row[:width])
        try:
            if visible in seen:
                continue
            seen.add(visible)
        except TypeError as exc:
            raise refuse("DISTINCT over values that cannot be compared in a merge") from exc
        yield row


def _unlabel(expression: Any) -> Any:
    while isinstance(expression, Label):
        expression = expression.element
    return expression


@dataclass
class _Aggregate:
    name: str
    expression: Any
    first: int = 0  # index of its first partial column among the partials
    arity: int = 1

    def partials(self) -> list[Any]:
        if self.name != "avg":
            return [self.expression]
        arg = next(iter(self.expression.clauses))
        return [func.sum(arg), func.count(arg)]

    def final(self, values: Sequence[Any]) -> Any:
        if self.name != "avg":
            return values[0]
        total, count = values
        if not count or total is None:
            return None
        if isinstance(total, float):
            return total / count
        return pg_numeric_div(total, count)


def _combine(name: str, a: Any, b: Any) -> Any:
    if name == "count":
        return (a or 0) + (b or 0)
    if a is None:
        return b
    if b is None:
        return a
    if name in ("sum", "avg"):
        return a + b
    if name == "min":
        return b if b < a else a
    return b if b > a else a


Evaluator = Callable[["_Group"], Any]


@dataclass
class _Group:
    keys: tuple[Any, ...]
    finals: list[Any]
    outputs: list[Any] = field(default_factory=list)


@dataclass
class GroupsPlan:
    """Per-group partial aggregates from every shard, merged; HAVING and ORDER BY after."""

    statement: Select[Any]
    group_count: int
    aggregates: list[_Aggregate]
    partial_names: list[str]
    outputs: list[Evaluator]
    having: list[Evaluator]
    order: list[tuple[SortKey, Evaluator]]
    keys: list[str]
    distinct: bool
    limit: int | None
    offset: int

    @classmethod
    def build(cls, statement: Select[Any], params: Any) -> GroupsPlan:
        for description in statement.column_descriptions:
            expr = description.get("expr")
            if isinstance(expr, type) or (
                description.get("entity") is not None
                and description.get("type") is description.get("entity")
            ):
                raise refuse("ORM entities in an aggregate query over several shards")
        groups = [_resolve_group(g, statement) for g in sqla.group_by(statement)]
        builder = _Builder(groups, params or {}, statement)
        outputs = [builder.compile(column) for column in statement.selected_columns]
        having = [builder.compile(term) for term in sqla.having(statement)]
        order: list[tuple[SortKey, Evaluator]] = []
        for key in _sort_keys(statement):
            order.append((key, builder.compile_order(key.expression)))
        partial_columns: list[Any] = []
        names: list[str] = []  # how each partial column merges
        for aggregate in builder.aggregates:
            aggregate.first = len(partial_columns)
            parts = aggregate.partials()
            aggregate.arity = len(parts)
            partial_columns.extend(parts)
            names.extend(["sum", "count"] if aggregate.name == "avg" else [aggregate.name])
        columns = [g.label(f"_elearn_g{i}") for i, g in enumerate(groups)] + [
            p.label(f"_elearn_p{i}") for i, p in enumerate(partial_columns)
        ]
        if not columns:
            raise refuse("an aggregate query that selects nothing mergeable")
        shard_statement = (
            sqla.without_having(statement)
            .with_only_columns(*columns, maintain_column_froms=True)
            .order_by(None)
            .limit(None)
            .offset(None)
        )
        limit, offset = sqla.limit_and_offset(statement)
        is_distinct, _ = sqla.distinct(statement)
        return cls(
            shard_statement,
            len(groups),
            builder.aggregates,
            names,
            outputs,
            having,
            order,
            list(statement.selected_columns.keys()),
            is_distinct,
            limit,
            offset,
        )

    def merge(self, parts: list[list[Any]]) -> list[tuple[Any, ...]]:
        k = self.group_count
        merged: dict[tuple[Any, ...], list[Any]] = {}
        names = self.partial_names
        for rows in parts:
            for row in rows:
                key = tuple(row[:k])
                values = list(row[k:])
                current = merged.get(key)
                if current is None:
                    merged[key] = values
                else:
                    merged[key] = [
                        _combine(name, a, b)
                        for name, a, b in zip(names, current, values, strict=True)
                    ]
        if not k and not merged:
            merged[()] = [0 if n == "count" else None for n in names]
        groups: list[_Group] = []
        for key, values in merged.items():
            finals = [a.final(values[a.first : a.first + a.arity]) for a in self.aggregates]
            group = _Group(key, finals)
            if all(h(group) is True for h in self.having):
                group.outputs = [out(group) for out in self.outputs]
                groups.append(group)
        if self.order:
            keys = [key for key, _ in self.order]
            evaluators = [ev for _, ev in self.order]
            sort_values = {id(g): [ev(g) for ev in evaluators] for g in groups}
            groups.sort(key=_row_comparator(keys, lambda g, i: sort_values[id(g)][i]))
        out: Iterable[tuple[Any, ...]] = (tuple(g.outputs) for g in groups)
        if self.distinct:
            out = (tuple(r) for r in _unique(out, len(self.outputs)))
        stop = None if self.limit is None else self.offset + self.limit
        return list(itertools.islice(out, self.offset, stop))


def _resolve_group(element: Any, statement: Select[Any]) -> Any:
    if isinstance(element, _textual_label_reference):
        name = str(element.element)
        if name not in statement.selected_columns:
            raise refuse(f"GROUP BY {name!r} names no selected column")
        return _unlabel(statement.selected_columns[name])
    if isinstance(element, _label_reference):
        return _unlabel(element.element)
    return _unlabel(element)


def _from_keys(index: int) -> Evaluator:
    def get(group: _Group) -> Any:
        return group.keys[index]

    return get


def _from_finals(index: int) -> Evaluator:
    def get(group: _Group) -> Any:
        return group.finals[index]

    return get


def _from_outputs(index: int) -> Evaluator:
    def get(group: _Group) -> Any:
        return group.outputs[index]

    return get


def _constant(value: Any) -> Evaluator:
    def get(group: _Group) -> Any:
        return value

    return get


class _Builder:
    """Compile expressions over merged groups into Python evaluators (SQL NULL semantics)."""

    def __init__(self, groups: list[Any], params: Any, statement: Select[Any]) -> None:
        self.groups = groups
        self.params = params if isinstance(params, dict) else {}
        self.statement = statement
        self.aggregates: list[_Aggregate] = []
        self.outputs = list(statement.selected_columns)

    def compile_order(self, expression: Any) -> Evaluator:
        # ORDER BY may name an output column (by label or the same expression).
        for index, column in enumerate(self.outputs):
            if expression is column or (
                isinstance(column, Label) and isinstance(expression, Label) and column is expression
            ):
                return _from_outputs(index)
        return self.compile(expression)

    def compile(self, expression: Any) -> Evaluator:
        expr = expression
        while isinstance(expr, Label | Grouping):
            expr = expr.element
        key = _same_sql(expr) if isinstance(expr, ColumnElement) else None
        for index, group in enumerate(self.groups):
            if key is not None and key == _same_sql(group):
                return _from_keys(index)
        name = _is_aggregate(expr)
        if name is not None:
            for index, aggregate in enumerate(self.aggregates):
                if key == _same_sql(aggregate.expression):
                    return _from_finals(index)
            self.aggregates.append(_Aggregate(name, expr))
            position = len(self.aggregates) - 1
            return _from_finals(position)
        if isinstance(expr, BindParameter):
            value = expr.value
            if value is None and expr.key in self.params:
                value = self.params[expr.key]
            elif value is None:
                value = expr.effective_value
            return _constant(value)
        if isinstance(expr, Null):
            return _constant(None)
        if isinstance(expr, True_):
            return _constant(True)
        if isinstance(expr, False_):
            return _constant(False)
        if isinstance(expr, BooleanClauseList):
            parts = [self.compile(c) for c in expr.clauses]
            if expr.operator is operators.and_:
                return lambda g: _sql_and([p(g) for p in parts])
            if expr.operator is operators.or_:
                return lambda g: _sql_or([p(g) for p in parts])
        if isinstance(expr, UnaryExpression) and expr.operator is operators.inv:
            inner = self.compile(expr.element)
            return lambda g: None if inner(g) is None else not inner(g)
        if isinstance(expr, BinaryExpression):
            op = expr.operator
            if op in (operators.is_, operators.is_not):
                left, right = self.compile(expr.left), self.compile(expr.right)
                same = op is operators.is_
                return lambda g: (left(g) is right(g)) if same else (left(g) is not right(g))
            fn = _COMPARE.get(op)
            if fn is not None:
                left, right = self.compile(expr.left), self.compile(expr.right)

                def apply(g: _Group, f: Any = fn, lt: Any = left, rt: Any = right) -> Any:
                    a, b = lt(g), rt(g)
                    return None if a is None or b is None else f(a, b)

                return apply
        raise refuse(f"the expression {_describe(expression)} in an aggregate query")


_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _same_sql(expression: Any) -> tuple[str, str]:
    """Return a key equal for two expressions that render the same SQL with the same values.

    (``ClauseElement.compare`` fails on ORM-annotated columns of different
    entities in SQLAlchemy 2.1.)
    """
    compiled = expression.compile(dialect=_DIALECT)
    return str(compiled), repr(sorted(compiled.params.items()))


def _describe(expression: Any) -> str:
    try:
        return repr(str(expression))[:80]
    except Exception:
        return type(expression).__name__


def _sql_and(values: list[Any]) -> Any:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _sql_or(values: list[Any]) -> Any:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


Plan = RowsPlan | GroupsPlan
# One plan per statement object (statements are immutable; see routing._TABLES).
_PLANS: weakref.WeakKeyDictionary[Any, Plan] = weakref.WeakKeyDictionary()


def plan_select(statement: Any, params: Any = None) -> Plan:
    """Return how to run ``statement`` on several shards and merge it.

    Raises:
        CrossShardQuery: no exact merge exists (see the module docstring).
    """
    if not params:
        try:
            cached = _PLANS.get(statement)
        except TypeError:  # not weakly referenceable
            cached = None
        if cached is not None:
            return cached
    _check_shape(statement)
    plan: Plan = (
        GroupsPlan.build(statement, params)
        if _has_aggregates(statement)
        else RowsPlan.build(statement)
    )
    if not params:
        # Plans read bind values only from the statement itself without params.
        with contextlib.suppress(TypeError):
            _PLANS[statement] = plan
    return plan


# ------------------------------------------------------------------ execution


def _finish(plan: Plan, frozen: list[Any]) -> Result[Any]:
    """Return the merged Result from each shard's frozen result."""
    parts = [list(f()) for f in frozen]
    if isinstance(plan, GroupsPlan):
        return sqla.rows_result(plan.keys, plan.merge(parts))
    rows = plan.merge(parts)
    result: Result[Any] = frozen[0].with_new_rows(rows)()
    if plan.keys:
        result = result.columns(*range(plan.width))
    return result


def execute_core(
    uow: UnitOfWork, statement: Any, params: Any, shards: Sequence[str]
) -> Result[Any]:
    """Run a Core SELECT on ``shards`` in parallel; return the exact merged result."""
    plan = plan_select(statement, params)
    connections = {shard: uow.connection(shard) for shard in shards}

    def run(shard: str) -> Any:
        try:
            return connections[shard].execute(plan.statement, params).freeze()
        except SQLAlchemyError as exc:
            raise translate(exc, shard) from exc

    return _finish(plan, in_parallel(run, list(shards)))


def execute_orm(ctx: ORMExecuteState, shards: Sequence[str]) -> Result[Any]:
    """Run an ORM SELECT on ``shards`` (SQL in parallel); return the exact merged result.

    The statements run in parallel; rows are turned into objects in the calling
    thread, the only one that touches the session's identity map.
    """
    plan = plan_select(ctx.statement, ctx.parameters)
    session = ctx.session
    for shard in shards:
        session.connection(bind_arguments={"shard_id": shard})

    def run(shard: str) -> Any:
        return ctx.invoke_statement(
            statement=plan.statement,
            bind_arguments={**ctx.bind_arguments, "shard_id": shard},
            execution_options={"identity_token": shard},
        )

    results = in_parallel(run, list(shards))
    return _finish(plan, [r.freeze() for r in results])
