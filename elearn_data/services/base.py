"""The narrow interfaces the services (and ``db.analytics``) take from the ``connect()`` object.

Each service is built with the parts it uses and nothing else: the units of
work it runs (:class:`Units`), the :class:`~elearn_data.sharding.routing.Router`
that names shards, the settings, the content store (:class:`ContentSource`),
the outbox relay (:class:`OutboxRelay`), or, for the analytics layer, the
cluster and the caller's causal token (:class:`CausalCluster`).
:class:`~elearn_data.database.Database` provides all of them, but no module
under ``services/`` or ``analytics/`` imports ``database.py`` -- not even for
type checking -- so the facade depends on the services and never the other way
round (``tests/unit/test_import_graph.py`` checks the import graph).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from elearn_data.config import Settings
    from elearn_data.content import ContentStore
    from elearn_data.sharding.consistency import CausalToken
    from elearn_data.sharding.routing import Router
    from elearn_data.sharding.unit_of_work import Cluster, PreparedRead, UnitOfWork

T = TypeVar("T")


class Units(Protocol):
    """Run one call as one unit of work (``Database.write`` / ``Database.reader``).

    ``shard`` is a region or shard name (a scoped unit of work) or None (a
    global one, routed by each statement's criteria).
    """

    def write(self, shard: object | None, fn: Callable[[UnitOfWork], T]) -> T:
        """Run ``fn`` on primaries, commit atomically across shards; retry what wrote nothing."""
        ...

    def reader(
        self,
        region_or_shard: object | None = None,
        *,
        token: CausalToken | None = None,
        snapshot: bool = False,
    ) -> UnitOfWork:
        """A reader unit of work (``with ... as uow:``) on replicas that have replayed
        ``token`` (default: the caller's writes); ``snapshot=True`` reads each shard
        in one read-only REPEATABLE READ snapshot. A lost connection is replaced
        and the statement run again by the unit of work itself, once per shard.
        """
        ...

    def read_prepared(
        self, shard: str, query: PreparedRead, args: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        """The rows of one prepared read on ``shard``: what a reader scoped to the shard
        returns from ``fetch_prepared_rows``, for a call that is only that read (no
        unit of work built around it when a replica's pooled connection serves it).
        """
        ...


class ContentSource(Protocol):
    """The content store (MongoDB or in-process), connected on first use."""

    @property
    def content_store(self) -> ContentStore: ...


class OutboxRelay(Protocol):
    """Applies the content outbox that PostgreSQL transactions wrote (in the background)."""

    def relay_outbox(self, shards: list[str], *, wait: bool = False) -> None:
        """Hand the rows a committed unit of work wrote on ``shards`` to the relay.

        Returns at once; with ``wait``, once the relay has passed over them (for
        calls whose contract includes the content store's side).
        """
        ...

    def after_registration(self, user_id: uuid.UUID) -> None:
        """Hand a new user's outbox entry (their preferences document) to the relay."""
        ...


class CausalCluster(Protocol):
    """The engines, router and settings of a ``connect()`` object, and its causal token."""

    @property
    def cluster(self) -> Cluster: ...

    @property
    def router(self) -> Router: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def token(self) -> CausalToken:
        """What a read must see: the caller's writes so far (or its causal scope's)."""
        ...
