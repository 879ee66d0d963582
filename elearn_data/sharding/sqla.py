"""The private SQLAlchemy attributes the router and the cross-shard merge read, in one place.

SQLAlchemy has no public getter for a SELECT's ORDER BY, GROUP BY, HAVING,
LIMIT, OFFSET and DISTINCT, nor for an INSERT's VALUES, and no public
constructor of a result from merged rows. Everything of that kind the package
needs is here, so that an upgrade has one module to check;
``tests/unit/test_sqla_internals.py`` pins each accessor against the installed
version (pyproject pins SQLAlchemy to the minor versions it was tested with).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Result, Select
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.ext.horizontal_shard import ShardedSession, set_shard_id
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.pool import Pool, PoolProxiedConnection
from sqlalchemy.sql.dml import Insert


def order_by(statement: Select[Any]) -> tuple[Any, ...]:
    """Return the ORDER BY elements of a SELECT."""
    return tuple(statement._order_by_clauses)


def group_by(statement: Select[Any]) -> tuple[Any, ...]:
    """Return the GROUP BY elements of a SELECT."""
    return tuple(statement._group_by_clauses)


def having(statement: Select[Any]) -> tuple[Any, ...]:
    """Return the HAVING criteria of a SELECT (AND-ed)."""
    return tuple(statement._having_criteria)


def without_having(statement: Select[Any]) -> Select[Any]:
    """Return a copy of ``statement`` without its HAVING criteria."""
    copy = statement._generate()
    copy._having_criteria = ()
    return copy


def distinct(statement: Select[Any]) -> tuple[bool, tuple[Any, ...]]:
    """Return (SELECT DISTINCT?, the DISTINCT ON expressions)."""
    return bool(statement._distinct), tuple(statement._distinct_on)


def has_limit_or_offset(statement: Select[Any]) -> bool:
    return statement._limit_clause is not None or statement._offset_clause is not None


def limit_and_offset(statement: Select[Any]) -> tuple[int | None, int]:
    """Return LIMIT (None: none) and OFFSET (0: none) as integers.

    Raises:
        CompileError: a LIMIT or OFFSET that is not a plain integer.
    """
    limit = statement._limit if statement._limit_clause is not None else None
    offset = statement._offset if statement._offset_clause is not None else None
    return limit, int(offset or 0)


def ctes(statement: Any) -> bool:
    """True when the statement declares a CTE at its top level."""
    return bool(getattr(statement, "_independent_ctes", ())) or bool(
        getattr(statement, "_cte_alias", None)
    )


def insert_values(statement: Insert) -> list[dict[Any, Any]]:
    """Return the rows of an INSERT's ``.values(...)`` (column or key -> value or clause)."""
    multi = statement._multi_values
    if multi:
        return [dict(row) for group in multi for row in group if isinstance(row, dict)]
    values = statement._values
    return [dict(values)] if values else []


def insert_has_positional_rows(statement: Insert) -> bool:
    """True when ``.values()`` was given rows as tuples (positional)."""
    return any(not isinstance(row, dict) for group in statement._multi_values for row in group)


def insert_from_select(statement: Insert) -> bool:
    return statement.select is not None


def rows_result(keys: Sequence[str], rows: Iterable[Sequence[Any]]) -> Result[Any]:
    """Return a Result over rows computed in Python (keys: the column names)."""
    return IteratorResult(SimpleResultMetaData(list(keys)), iter([tuple(r) for r in rows]))


def invalidate_pool(engine: Engine, fairy: Any, exc: BaseException) -> None:
    """Invalidate ``engine``'s pool after a disconnect seen outside SQLAlchemy's execution.

    What SQLAlchemy's own execution does on a disconnect (``handle_error``
    decided one): every connection the pool made before now is replaced at its
    next checkout -- a server restart ended them all, and a replacement taken
    from the pool must not be another dead one. The prepared-read fast path
    calls it; SQLAlchemy has no public form of it (``Pool._invalidate``).
    """
    invalidate_older(engine.pool, fairy, exc)


def shape_key(statement: Any) -> Any | None:
    """Return the statement's structure without its bound values (None: not cacheable).

    SQLAlchemy's cache key (``HasCacheKey._generate_cache_key()``, what its
    compiled-statement cache is keyed by; ``.key`` is the values-free part):
    two statements with the same key compile to the same SQL. The router keys
    what a statement reads by it (``routing.statement_tables``).
    """
    generate = getattr(statement, "_generate_cache_key", None)
    if generate is None:
        return None
    found = generate()
    return None if found is None else found.key


def invalidate_older(pool: Pool, fairy: Any, exc: BaseException) -> None:
    """:func:`invalidate_pool` on ``pool`` itself (a pool without an engine: sharding.multiplex)."""
    pool._invalidate(fairy, exc, _checkin=False)


def observed(conn: Connection) -> bool:
    """True when something listens to this connection's statements (events, echo).

    SQLAlchemy has no public "does anything listen?" question: the connection's
    echo flag, its and its engine's event flags and the listener collections
    answer it. The prepared-read fast path asks before it bypasses SQLAlchemy's
    execution (listeners must see every statement).
    """
    if conn._echo:
        return True
    # The engine's flag says whether any connection event was ever registered
    # (it stays set after a removal: the listener collections then decide).
    if (conn._has_events or conn.engine._has_events) and _listened(
        conn.dispatch, _STATEMENT_EVENTS
    ):
        return True
    # handle_error listeners (ours included) are served by the fast path's own
    # error handling; a do_execute listener must see the statement.
    return _listened(conn.dialect.dispatch, _DIALECT_EVENTS)


def observed_engine(engine: Engine) -> bool:
    """:func:`observed` for a connection ``engine`` would build (before building one).

    The point-read path asks it of a replica's engine before it runs a read on
    a pooled driver connection without a ``Connection`` around it: echo (what
    a new ``Connection`` copies), the engine's statement listeners and its
    ``engine_connect`` listeners (they would see the ``Connection`` made), any
    listener registered on the ``Connection`` class itself, and the dialect's
    ``do_execute`` listeners.
    """
    if engine._should_log_info() or Connection._has_events:
        return True
    if engine._has_events and _listened(engine.dispatch, _ENGINE_EVENTS):
        return True
    return _listened(engine.dialect.dispatch, _DIALECT_EVENTS)


# The connection events that see a statement run.
_STATEMENT_EVENTS = (
    "before_cursor_execute",
    "after_cursor_execute",
    "before_execute",
    "after_execute",
)
# ... and, asked of an engine, the one that sees a Connection made; of a dialect,
# the one that sees the driver's execute.
_ENGINE_EVENTS = (*_STATEMENT_EVENTS, "engine_connect")
_DIALECT_EVENTS = ("do_execute",)


def _listened(dispatch: Any, events: Sequence[str]) -> bool:
    """True when one of ``events`` has a listener in ``dispatch``."""
    return any(getattr(dispatch, name) for name in events)


def connection_on(engine: Engine, pooled: PoolProxiedConnection) -> Connection:
    """Return a ``Connection`` of ``engine`` around a connection already checked out of its pool.

    What ``engine.connect()`` returns, without a second checkout (its public
    constructor's ``connection`` argument); closing it checks ``pooled`` in.
    """
    return Connection(engine, pooled)


def init_sharded_session(
    session: ShardedSession,
    *,
    shard_chooser: Any,
    identity_chooser: Any,
    execute_chooser: Any,
    **kwargs: Any,
) -> None:
    """Initialise ``session`` as ``ShardedSession.__init__`` does, without its execute hook.

    ``ShardedSession.__init__`` registers its ``do_orm_execute`` listener
    (``execute_and_instances``) on every new instance, which costs more than
    building the rest of the session; a subclass that does that listener's work
    in a class-level hook calls this instead. The attributes are the ones the
    constructor sets (pinned by ``tests/unit/test_sqla_internals.py``).
    """
    Session.__init__(session, **kwargs)
    session.shard_chooser = shard_chooser
    session.identity_chooser = identity_chooser
    session.execute_chooser = execute_chooser
    session._ShardedSession__shards = {}  # type: ignore[attr-defined]


def pinned_shard(ctx: ORMExecuteState) -> Any:
    """The shard a statement is pinned to, as ShardedSession's own hook reads it, or None.

    A ``set_shard_id`` option, an identity token (a refresh, a get by identity),
    ``_sa_shard_id``, or ``bind_arguments={"shard_id": ...}``, in that order.
    The routed session's hook asks it in place of ShardedSession's own
    per-instance hook; the ORM's options have no public getter.
    """
    for option in ctx._non_compile_orm_options:
        if isinstance(option, set_shard_id):
            return option.shard_id
    options: Any = None
    if ctx.is_select:
        options = ctx.load_options
    elif ctx.is_update or ctx.is_delete:
        options = ctx.update_delete_options
    if options is not None and options._identity_token is not None:
        return options._identity_token
    if "_sa_shard_id" in ctx.execution_options:
        return ctx.execution_options["_sa_shard_id"]
    return ctx.bind_arguments.get("shard_id")
