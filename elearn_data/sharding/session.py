"""``RoutedSession``: SQLAlchemy's ShardedSession, routed by the Router's one rule.

Built with ShardedSession's public constructor and its hooks:

* ``shard_chooser`` (new objects): a learner-owned object goes to the shard of
  the region its shard-key id carries; a seat ledger row to its course's home
  shard; a directory row by its hash. Catalog (reference) rows are never
  flushed through the ORM (``db.catalog`` writes every copy in one two-phase
  commit): adding, changing or deleting one raises
  :class:`~elearn_data.errors.RoutingError` at flush, before anything is sent.
* ``identity_chooser``: decodes the region from the primary key (one shard).
* ``execute_chooser`` and the ``do_orm_execute`` hook: every ORM statement is
  placed by :meth:`Router.route <elearn_data.sharding.routing.Router.route>`,
  exactly as ``uow.execute`` places Core statements; a SELECT that runs on
  several shards is merged exactly by :mod:`~elearn_data.sharding.crossshard`.

A scoped unit of work keeps every statement and every object on its shard.

Binds are resolved lazily: ``get_bind`` asks the owning unit of work for the
shard's connection, which opens (and, for a writer, begins) it on first use. A
session that touches one shard therefore opens exactly one connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Insert, Table, event, inspect
from sqlalchemy.ext.horizontal_shard import ShardedQuery, ShardedSession
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, UOWTransaction

from elearn_data.errors import RoutingError
from elearn_data.models.base import Placement, placement_of, shard_key_of
from elearn_data.sharding import crossshard, sqla
from elearn_data.sharding.routing import CATALOG_HINT

if TYPE_CHECKING:
    from elearn_data.sharding.unit_of_work import UnitOfWork

__all__ = ["RoutedSession", "RoutingError"]


class RoutedSession(ShardedSession):
    """A ShardedSession bound to one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._router = uow.router
        self._scope = uow.scoped_to
        # ShardedSession's state without its per-instance do_orm_execute listener
        # (registering it costs more than the rest of the session's construction);
        # _route_orm_execute, registered on the class, does that listener's work.
        sqla.init_sharded_session(
            self,
            shard_chooser=self._shard_chooser,
            identity_chooser=self._identity_chooser,
            execute_chooser=self._execute_chooser,
            query_cls=ShardedQuery,
            expire_on_commit=False,
            autoflush=True,
        )

    # -------------------------------------------------------------------- get

    def get(self, entity: Any, ident: Any, **kw: Any) -> Any:
        """``Session.get``, routed once: the id names its shard, the SELECT is pinned to it.

        ShardedSession would ask the identity chooser (for the identity map) and
        then the execute chooser (for the SELECT) the same question; passing the
        one answer as ``identity_token`` gives the same row for one routing.
        """
        if kw.get("identity_token") is None and not isinstance(ident, dict):
            mapper = getattr(inspect(entity, raiseerr=False), "mapper", None)
            if isinstance(mapper, Mapper):
                shards = list(self._identity_chooser(mapper, ident))
                if not shards:
                    return None
                if len(shards) == 1:
                    kw["identity_token"] = shards[0]
        return super().get(entity, ident, **kw)

    # ------------------------------------------------------------------ binds

    def get_bind(
        self,
        mapper: Any = None,
        *,
        shard_id: str | None = None,
        instance: Any = None,
        clause: Any = None,
        **kw: Any,
    ) -> Any:
        if shard_id is None:
            shard_id = self._choose_shard_and_assign(mapper, instance, clause=clause)
        return self._uow.connection(shard_id)

    # --------------------------------------------------------------- choosers

    def _shard_chooser(
        self, mapper: Mapper[Any] | None, instance: Any, clause: Any = None, **kw: Any
    ) -> str:
        if mapper is None or instance is None:
            if self._scope is not None:
                return self._scope
            raise RoutingError(
                "cannot choose a shard without a mapped object in a global unit of work: "
                "use a scoped unit of work (db.writer('eu')) or pass shard_id"
            )
        table = mapper.local_table
        assert isinstance(table, Table)
        placement = placement_of(table)
        key = shard_key_of(table)
        value = getattr(instance, key) if key else None
        shard: str | None = None
        if placement is Placement.LEARNER and value is not None:
            shard = self._router.shard_of_owner(value)
        elif placement is Placement.LEARNER and table.name == "users" and instance.region:
            shard = self._router.shard_of_region(instance.region)
        elif placement is Placement.HOME and value is not None:
            shard = self._router.home_shard_of(value)
        elif placement is Placement.DIRECTORY and value is not None:
            shard = self._router.directory_shard(value)
        elif placement is Placement.LOCAL:
            if self._scope is None:
                raise RoutingError(
                    f"{table.name} is per-shard bookkeeping: add it in a scoped unit of "
                    "work (db.writer('eu'))"
                )
            shard = self._scope
        if shard is None:
            raise RoutingError(
                f"cannot place a new {mapper.class_.__name__}: "
                + (
                    CATALOG_HINT
                    if placement is Placement.REFERENCE
                    else f"its shard key {key!r} is not set"
                )
            )
        if self._scope is not None and shard != self._scope:
            raise RoutingError(
                f"this unit of work is scoped to shard {self._scope!r} but the new "
                f"{mapper.class_.__name__} belongs to shard {shard!r}: use db.writer() "
                "without an argument, or a unit of work of that shard"
            )
        return shard

    def _identity_chooser(self, mapper: Mapper[Any], primary_key: Any, **kw: Any) -> Iterable[str]:
        table = mapper.local_table
        assert isinstance(table, Table)
        pk = tuple(primary_key) if isinstance(primary_key, list | tuple) else (primary_key,)
        if placement_of(table) is Placement.REFERENCE:
            return [self._scope or self._router.catalog_shard]
        names = [c.name for c in mapper.primary_key]
        if self._scope is None and placement_of(table) is Placement.LOCAL:
            raise RoutingError(
                f"{table.name} is per-shard bookkeeping: read it in a scoped unit of work "
                "(db.reader('eu'))"
            )
        shards = self._router.identity_shards(table, pk, names)
        if self._scope is None:
            return shards
        if placement_of(table) is Placement.LOCAL or not shards:
            return [self._scope] if placement_of(table) is Placement.LOCAL else []
        if self._scope not in shards:
            raise RoutingError(
                f"this unit of work is scoped to shard {self._scope!r} but "
                f"{mapper.class_.__name__} {pk!r} lives on shard {shards[0]!r}: use "
                "db.reader() without an argument, or a unit of work of that shard"
            )
        return [self._scope]

    def _execute_chooser(self, ctx: ORMExecuteState) -> Iterable[str]:
        if ctx.is_select:
            # is_select before lazy_loaded_from: ORM UPDATE/DELETE have no load options.
            lazy_from = ctx.lazy_loaded_from
            if lazy_from is not None and lazy_from.identity_token is not None:
                return [str(lazy_from.identity_token)]
        return self._router.route(ctx.statement, ctx.parameters, self._scope)


def _route_orm_execute(ctx: ORMExecuteState) -> Any:
    """``do_orm_execute``: run the statement where the Router says, merging several shards.

    The session's only statement hook (see :meth:`RoutedSession.__init__`), so a
    statement on one shard is executed once, by the session itself, after this
    hook returns: it is bound to its shard (``shard_id``) and its objects get
    the shard as identity token, as ShardedSession's own hook would do. A
    statement already pinned to a shard
    (:func:`~elearn_data.sharding.sqla.pinned_shard`) is not routed.
    """
    session = ctx.session
    if not isinstance(session, RoutedSession):
        return None
    pinned = sqla.pinned_shard(ctx)
    if pinned is not None:
        _bind_to(ctx, pinned)
        return None
    shards = list(session._execute_chooser(ctx))
    if len(shards) == 1:
        _bind_to(ctx, shards[0])
        if session._uow.role != "reader":
            return None
        # A reader runs it here, to replace a lost pooled connection once (as uow.execute).
        return session._uow.on_shard(shards[0], lambda _: ctx.invoke_statement())
    if ctx.is_select:
        return crossshard.execute_orm(ctx, shards)
    if ctx.is_insert:
        statement = ctx.statement
        assert isinstance(statement, Insert)
        split = session._router.split_insert(statement, ctx.parameters)
        # A new execution per shard: invoke_statement cannot shorten a parameter list.
        results = [
            session.execute(
                ctx.statement,
                rows,
                execution_options=ctx.local_execution_options,
                bind_arguments={**ctx.bind_arguments, "shard_id": shard},
            )
            for shard, rows in split.items()
        ]
    else:
        results = [
            ctx.invoke_statement(
                bind_arguments={**ctx.bind_arguments, "shard_id": shard},
                execution_options={"identity_token": shard},
            )
            for shard in shards
        ]
    return results[0].merge(*results[1:])


def _bind_to(ctx: ORMExecuteState, shard: Any) -> None:
    """Run the statement on ``shard``; loaded objects carry it as identity token."""
    ctx.bind_arguments["shard_id"] = shard
    ctx.update_execution_options(identity_token=shard)


def _refuse_catalog_changes(session: Session, flush: UOWTransaction, instances: Any) -> None:
    """``before_flush``: a changed catalog object would change one copy of the catalog only."""
    for obj in [*session.new, *session.dirty, *session.deleted]:
        table = getattr(inspect(obj).mapper, "local_table", None)
        if not isinstance(table, Table) or "placement" not in table.info:
            continue
        if placement_of(table) is not Placement.REFERENCE:
            continue
        if obj in session.dirty and not session.is_modified(obj):
            continue
        raise RoutingError(f"{type(obj).__name__} ({table.name}): {CATALOG_HINT}")


# Class-level hooks (RoutedSession has no per-instance execute hook: see __init__).
event.listen(RoutedSession, "do_orm_execute", _route_orm_execute, retval=True)
event.listen(RoutedSession, "before_flush", _refuse_catalog_changes)
