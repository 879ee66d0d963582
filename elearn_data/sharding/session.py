"""``RoutedSession``: SQLAlchemy's ShardedSession with our choosers and lazy per-shard connections.

The three choosers of ``sqlalchemy.ext.horizontal_shard`` are implemented with
the :class:`~elearn_data.sharding.routing.Router`:

* ``shard_chooser`` (new objects, and statements without criteria): a
  learner-owned object goes to the shard of the region its shard-key id carries;
  a seat ledger row to its course's home shard; a directory row by its hash.
  Catalog (reference) rows are never flushed through the ORM: they are written to
  every primary by :class:`~elearn_data.repositories.catalog.CatalogWriter`.
* ``identity_chooser``: decodes the region from the primary key (one shard).
* ``execute_chooser``: ``is_select`` first, then ``lazy_loaded_from``, then the
  WHERE-clause rules of :mod:`~elearn_data.sharding.routing`; a SELECT of
  reference tables only goes to the unit of work's shard; an UPDATE/DELETE of
  reference tables goes to every shard.

Binds are resolved lazily: ``get_bind`` asks the owning unit of work for the
shard's connection, which opens (and, for a writer, begins) it on first use. A
session that touches one shard therefore opens exactly one connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, event, inspect
from sqlalchemy.ext.horizontal_shard import (
    ShardedQuery,
    ShardedSession,
    execute_and_instances,
)
from sqlalchemy.orm import Mapper, ORMExecuteState, Session

from elearn_data.errors import ElearnDataError
from elearn_data.models.base import Placement, placement_of, shard_key_of
from elearn_data.sharding.routing import tables_of

if TYPE_CHECKING:
    from elearn_data.sharding.unit_of_work import UnitOfWork


class RoutingError(ElearnDataError):
    """A statement or object whose shard cannot be decided (a programming error)."""


class RoutedSession(ShardedSession):
    """A ShardedSession bound to one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._router = uow.router
        # ShardedSession.__init__ registers its execute hook as an event listener
        # of every new instance (about 10 us of event bookkeeping per unit of
        # work); RoutedSession registers it once for the class (below) and does
        # the rest of that set-up here. tests/integration/test_routing.py covers it.
        Session.__init__(self, query_cls=ShardedQuery, expire_on_commit=False, autoflush=True)
        self.shard_chooser = self._shard_chooser
        self.identity_chooser = self._identity_chooser
        self.execute_chooser = self._execute_chooser
        self._ShardedSession__shards: dict[str, Any] = {}

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
        if instance is None or mapper is None:
            return self._uow.default_shard
        table = mapper.local_table
        assert isinstance(table, Table)
        placement = placement_of(table)
        key = shard_key_of(table)
        value = getattr(instance, key) if key else None
        if placement is Placement.LEARNER and value is not None:
            return self._router.shard_of_owner(value)
        if placement is Placement.HOME and value is not None:
            return self._router.home_shard_of(value)
        if placement is Placement.DIRECTORY and value is not None:
            return self._router.directory_shard(value)
        if placement is Placement.LOCAL:
            return self._uow.default_shard
        raise RoutingError(
            f"cannot place a new {mapper.class_.__name__}: "
            + (
                "catalog rows are written to every shard through CatalogWriter"
                if placement is Placement.REFERENCE
                else f"its shard key {key!r} is not set"
            )
        )

    def _identity_chooser(self, mapper: Mapper[Any], primary_key: Any, **kw: Any) -> Iterable[str]:
        table = mapper.local_table
        assert isinstance(table, Table)
        pk = tuple(primary_key) if isinstance(primary_key, list | tuple) else (primary_key,)
        names = [c.name for c in mapper.primary_key]
        if placement_of(table) is Placement.REFERENCE:
            return [self._uow.default_shard]
        return self._router.identity_shards(table, pk, names)

    def _execute_chooser(self, ctx: ORMExecuteState) -> Iterable[str]:
        statement = ctx.statement
        if ctx.is_select:
            # is_select before lazy_loaded_from: ORM UPDATE/DELETE have no load options.
            lazy_from = ctx.lazy_loaded_from
            if lazy_from is not None and lazy_from.identity_token is not None:
                return [str(lazy_from.identity_token)]
        where = getattr(statement, "whereclause", None)
        params = ctx.parameters if isinstance(ctx.parameters, dict) else {}
        narrowed = self._router.shards_for_criteria(where, params)
        if narrowed is not None:
            # Criteria naming only ids we never issued match no row anywhere; the
            # unit of work's own shard answers "no rows" as well as any.
            return sorted(narrowed) or [self._uow.default_shard]
        # Only now: finding a statement's tables builds a compile state of its own,
        # as costly as the statement's execution (a third of a point read's time).
        tables = tables_of(statement)
        reference_only = bool(tables) and all(
            "placement" in t.info and placement_of(t) is Placement.REFERENCE for t in tables
        )
        if reference_only:
            if ctx.is_select:
                return [self._uow.default_shard]
            return list(self._router.shards)
        return list(self._router.shards)


# Once for the class instead of once per session (see RoutedSession.__init__).
event.listen(RoutedSession, "do_orm_execute", execute_and_instances, retval=True)
