"""Pins the private SQLAlchemy attributes that elearn_data/sharding/sqla.py reads.

If an upgrade of SQLAlchemy renames or reshapes one of them, this fails here
(and pyproject's pin says which minor versions were tested).
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

from sqlalchemy import Connection, create_engine, event, func, insert, select
from sqlalchemy.ext import horizontal_shard
from sqlalchemy.ext.horizontal_shard import ShardedSession
from sqlalchemy.orm import ORMExecuteState
from sqlalchemy.orm.context import QueryContext
from sqlalchemy.pool import Pool

from elearn_data import ids
from elearn_data.models import Enrollment, User
from elearn_data.regions import Region
from elearn_data.sharding import sqla


def test_the_installed_sqlalchemy_is_a_tested_minor_version() -> None:
    assert version("sqlalchemy").startswith("2.1.")


def test_select_accessors_read_order_group_having_limit_offset_distinct() -> None:
    stmt = (
        select(User.region, func.count())
        .group_by(User.region)
        .having(func.count() > 1)
        .order_by(User.region.desc())
        .limit(5)
        .offset(2)
        .distinct()
    )
    assert len(sqla.order_by(stmt)) == 1
    assert [str(g) for g in sqla.group_by(stmt)] == ["users.region"]
    assert len(sqla.having(stmt)) == 1
    assert sqla.limit_and_offset(stmt) == (5, 2)
    assert sqla.distinct(stmt) == (True, ())
    assert sqla.has_limit_or_offset(stmt)
    stripped = sqla.without_having(stmt)
    assert sqla.having(stripped) == () and len(sqla.having(stmt)) == 1
    assert "HAVING" not in str(stripped)
    assert sqla.limit_and_offset(select(User.id)) == (None, 0)
    assert not sqla.ctes(select(User.id))
    cte = select(User.id).cte("ids")
    assert sqla.ctes(select(cte.c.id).add_cte(cte))


def test_insert_accessors_read_single_and_multi_row_values() -> None:
    single = sqla.insert_values(insert(User).values(id=1, region="europe"))
    assert [{str(getattr(k, "key", k)): v.value for k, v in row.items()} for row in single] == [
        {"id": 1, "region": "europe"}
    ]
    multi = sqla.insert_values(insert(Enrollment).values([{"id": 1}, {"id": 2}]))
    assert [list(row.values()) for row in multi] == [[1], [2]]
    assert sqla.insert_values(insert(User)) == []
    assert not sqla.insert_from_select(insert(User))
    assert sqla.insert_from_select(insert(User).from_select(["id"], select(User.id)))
    assert not sqla.insert_has_positional_rows(insert(User).values([{"id": 1}]))


def test_rows_result_is_a_result_with_keys() -> None:
    result = sqla.rows_result(["a", "b"], [(1, 2), (3, 4)])
    assert list(result.keys()) == ["a", "b"]
    assert result.all() == [(1, 2), (3, 4)]


def test_sharded_session_takes_the_public_hooks_we_pass() -> None:
    import inspect  # noqa: PLC0415

    params = inspect.signature(ShardedSession.__init__).parameters
    for name in ("shard_chooser", "identity_chooser", "execute_chooser", "shards", "query_cls"):
        assert name in params


def test_observed_reads_the_listener_flags_sqlalchemy_keeps() -> None:
    """``sqla.observed``: the echo flag, the event flags and the listener collections."""

    def listener(*args: object) -> None:
        return None

    engine = create_engine("postgresql+psycopg2://")  # never connects
    assert engine._has_events is False and Connection._has_events is False
    assert "self._echo = " in inspect.getsource(Connection.__init__)
    event.listen(engine, "before_cursor_execute", listener)
    assert engine._has_events and engine.dispatch.before_cursor_execute
    event.remove(engine, "before_cursor_execute", listener)
    # The flag stays set after a removal: the collections decide.
    assert engine._has_events and not engine.dispatch.before_cursor_execute
    for name in ("after_cursor_execute", "before_execute", "after_execute"):
        assert not getattr(engine.dispatch, name)
    # handle_error and do_execute are dialect events, registered through the engine.
    event.listen(engine, "handle_error", listener)
    assert engine.dialect.dispatch.handle_error and not engine.dialect.dispatch.do_execute
    event.listen(engine, "do_execute", listener)
    assert engine.dialect.dispatch.do_execute


def test_invalidate_pool_is_what_sqlalchemy_does_on_a_disconnect() -> None:
    """``sqla.invalidate_pool``: ``Pool._invalidate``, as Connection's error handling calls it."""
    assert "pool._invalidate(" in inspect.getsource(Connection._handle_dbapi_exception)
    params = inspect.signature(Pool._invalidate).parameters
    assert list(params)[:3] == ["self", "connection", "exception"]
    assert "_checkin" in params  # False: the caller invalidates the connection itself
    source = inspect.getsource(Pool._invalidate)
    assert "_invalidate_time" in source


def test_observed_engine_reads_the_flags_a_new_connection_would_copy() -> None:
    """``sqla.observed_engine``: echo, statement and engine_connect listeners, do_execute."""

    def listener(*args: object) -> None:
        return None

    engine = create_engine("postgresql+psycopg2://")  # never connects
    assert "self._echo = self.engine._should_log_info()" in inspect.getsource(Connection.__init__)
    assert "connection" in inspect.signature(Connection.__init__).parameters
    assert not sqla.observed_engine(engine)
    for name in ("before_cursor_execute", "engine_connect"):
        event.listen(engine, name, listener)
        assert sqla.observed_engine(engine)
        event.remove(engine, name, listener)
        assert not sqla.observed_engine(engine)
    event.listen(engine, "handle_error", listener)  # served by the fast path's own handling
    assert not sqla.observed_engine(engine)
    event.listen(engine, "do_execute", listener)
    assert sqla.observed_engine(engine)
    echoing = create_engine("postgresql+psycopg2://", echo=True)
    assert sqla.observed_engine(echoing)


def test_init_sharded_session_sets_what_sharded_session_init_sets_but_its_hook() -> None:
    """``sqla.init_sharded_session``: the constructor's attributes, no per-instance listener."""

    def chooser(*args: object, **kw: object) -> list[str]:
        return ["a"]

    choosers = {"shard_chooser": chooser, "identity_chooser": chooser, "execute_chooser": chooser}
    built = ShardedSession(**choosers)  # type: ignore[arg-type]
    assert list(built.dispatch.do_orm_execute) == [horizontal_shard.execute_and_instances]
    bare = ShardedSession.__new__(ShardedSession)
    sqla.init_sharded_session(bare, **choosers)
    assert not list(bare.dispatch.do_orm_execute)
    assert set(vars(bare)) - {"dispatch"} == set(vars(built)) - {"dispatch"}
    for name in ("shard_chooser", "identity_chooser", "execute_chooser"):
        assert getattr(bare, name) is chooser
    assert bare._ShardedSession__shards == {}  # type: ignore[attr-defined]
    source = inspect.getsource(horizontal_shard.execute_and_instances)
    # What _route_orm_execute does in its place: the pinned shard, read in this order,
    # becomes the bind's shard_id and the identity token.
    for needle in (
        "isinstance(orm_opt, set_shard_id)",
        "active_options._identity_token",
        '"_sa_shard_id" in orm_context.execution_options',
        '"shard_id" in orm_context.bind_arguments',
        "update_execution_options(identity_token=shard_id)",
    ):
        assert needle in source


def test_pinned_shard_reads_the_attributes_the_orm_keeps() -> None:
    """``sqla.pinned_shard``: the ORM's option list and the options' identity token."""
    assert "_non_compile_orm_options" in inspect.getsource(ORMExecuteState)
    assert "_identity_token" in vars(QueryContext.default_load_options)


def test_shape_key_is_the_cache_key_without_the_values() -> None:
    """``sqla.shape_key``: ``_generate_cache_key().key``, equal for two values, not two shapes."""
    a, b = ids.new_id(Region.EUROPE), ids.new_id(Region.ASIA)
    assert sqla.shape_key(select(User.id).where(User.id == a)) == sqla.shape_key(
        select(User.id).where(User.id == b)
    )
    assert sqla.shape_key(select(User.id).where(User.id == a)) != sqla.shape_key(
        select(Enrollment.id).where(Enrollment.user_id == a)
    )
    assert sqla.shape_key(select(User.id).where(User.id == a)) != sqla.shape_key(
        select(User.id).where(User.email == "x@example.org")
    )
    assert sqla.shape_key(object()) is None  # not a statement: nothing to key
