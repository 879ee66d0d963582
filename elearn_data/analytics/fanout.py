"""Parallel fan-out of one analytics call over every shard.

ShardedSession runs the shards of a statement one after another; analytics
needs every shard at once. :class:`FanOut` gives each shard its own worker
thread and its own reader unit of work: a replica that has replayed the
caller's causal token (or the primary when no replica can serve), in one
read-only REPEATABLE READ snapshot that lasts for the whole call. A call that needs
several rounds (the top-N algorithm) therefore sees each shard's data as of one
instant, and every round runs on all shards in parallel.

Each shard has ``timeout_s`` for the whole call: the server is told the same
budget (``SET LOCAL statement_timeout``), so a query nobody waits for any more
is cancelled on the server too. A shard that fails -- down, timed out,
cancelled -- ends the call with :class:`~elearn_data.errors.ShardUnavailable`
naming that shard, as soon as the failure is known (the other shards are not
waited for).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Executable
from sqlalchemy.exc import SQLAlchemyError

from elearn_data import retry
from elearn_data.dberrors import translate
from elearn_data.errors import ShardUnavailable
from elearn_data.sharding.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from types import TracebackType

    from elearn_data.services.base import CausalCluster

log = logging.getLogger(__name__)

T = TypeVar("T")

THREAD_PREFIX = "elearn-analytics"


class ShardQuery:
    """One shard's reader inside a fan-out: run aggregate statements, get plain dicts."""

    def __init__(self, shard: str, uow: UnitOfWork) -> None:
        self.shard = shard
        self._uow = uow

    @property
    def node(self) -> str:
        """``shard/role@host:port`` of the node serving this shard's reads."""
        choice = self._uow.choices.get(self.shard)
        return choice.node.label if choice is not None else f"{self.shard}/?"

    def rows(self, statement: Executable, **params: Any) -> list[dict[str, Any]]:
        """Return the rows of ``statement`` as dicts (column name -> value)."""
        result = self._uow.execute(statement, params or None, shard=self.shard)
        return [dict(row._mapping) for row in result]

    def one(self, statement: Executable, **params: Any) -> dict[str, Any]:
        """Return the single row of ``statement`` as a dict."""
        result = self._uow.execute(statement, params or None, shard=self.shard)
        return dict(result.one()._mapping)

    def scalar(self, statement: Executable, **params: Any) -> Any:
        """Return the first column of the first row of ``statement`` (or None)."""
        return self._uow.execute(statement, params or None, shard=self.shard).scalar()

    def close(self) -> None:
        """End the snapshot and return the connection (the unit of work discards a broken one)."""
        self._uow.close()


class FanOut:
    """Per-shard workers and snapshots for one analytics call (a context manager).

    ``run(work)`` calls ``work(query)`` for every shard at once, each on its
    shard's own thread, and returns ``{shard: result}`` in shard order.
    """

    def __init__(
        self, db: CausalCluster, *, timeout_s: float, shards: Sequence[str] | None = None
    ) -> None:
        self._db = db
        self.timeout_s = timeout_s
        self.shards: tuple[str, ...] = tuple(shards or db.router.shards)
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._queries: dict[str, ShardQuery] = {}
        self._deadline = 0.0
        self._abandoned = False

    def __enter__(self) -> FanOut:
        self._deadline = time.monotonic() + self.timeout_s
        self._executors = {
            shard: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{THREAD_PREFIX}-{shard}")
            for shard in self.shards
        }
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for shard, executor in self._executors.items():
            # Closing runs on the shard's own worker, after whatever it is still
            # doing -- including a snapshot it is still opening when another
            # shard's failure ended the call: a connection is never used by two
            # threads at once, and never left behind with its transaction open.
            executor.submit(self._close, shard)
            # A worker stuck past the deadline is not waited for: its statement
            # times out on the server and the worker then closes and exits.
            executor.shutdown(wait=not self._abandoned)
        self._executors = {}

    @property
    def nodes(self) -> dict[str, str]:
        """``{shard: node label}`` of the nodes that answered so far."""
        return {shard: query.node for shard, query in self._queries.items()}

    def remaining(self) -> float:
        """Seconds left of the per-shard budget of this call."""
        return max(0.0, self._deadline - time.monotonic())

    def run(
        self, work: Callable[[ShardQuery], T], shards: Sequence[str] | None = None
    ) -> dict[str, T]:
        """Run ``work`` on every shard (or on ``shards``) in parallel; return results by shard.

        Raises:
            ShardUnavailable: a shard failed or did not answer in time (names the shard).
        """
        if not self._executors:
            raise RuntimeError("FanOut.run() outside its `with` block")
        targets = tuple(shards or self.shards)
        futures: dict[str, Future[T]] = {
            shard: self._executors[shard].submit(self._call, shard, work) for shard in targets
        }
        done, pending = wait(
            futures.values(), timeout=self.remaining(), return_when=FIRST_EXCEPTION
        )
        for shard in targets:
            future = futures[shard]
            if future in done and future.exception() is not None:
                if pending:
                    self._abandoned = True
                for other in pending:
                    other.cancel()
                raise _named(shard, future.exception())
        if pending:
            self._abandoned = True
            late = [shard for shard in targets if futures[shard] in pending]
            for future in pending:
                future.cancel()
            raise ShardUnavailable(
                late[0],
                f"no answer within {self.timeout_s:g} s (analytics_timeout_s)"
                + (f"; also late: {', '.join(late[1:])}" if len(late) > 1 else ""),
            )
        return {shard: futures[shard].result() for shard in targets}

    # -------------------------------------------------------------- workers

    def _call(self, shard: str, work: Callable[[ShardQuery], T]) -> T:
        query = self._queries.get(shard) or self._open(shard)
        try:
            return work(query)
        except SQLAlchemyError as exc:
            raise translate(exc, shard) from exc

    def _open(self, shard: str) -> ShardQuery:
        """Open the shard's snapshot on a replica (or the primary), retrying a stale connection.

        The snapshot is the unit of work's own (``snapshot=True``): read-only
        REPEATABLE READ, begun together with its statement timeout in one round
        trip, and always ended by ``close``.
        """

        def attempt_open(attempt: retry.Attempt) -> ShardQuery:
            # A pooled connection to a node restarted since it was pooled fails
            # on first use; nothing was read, so retry.READS runs this once more.
            budget_ms = max(1, math.ceil(self.remaining() * 1000))
            uow = attempt.track(
                UnitOfWork(
                    self._db.cluster,
                    "reader",
                    shard,
                    token=self._db.token,
                    snapshot=True,
                    statement_timeout_ms=budget_ms,
                )
            )
            query = ShardQuery(shard, uow)
            try:
                uow.connection(shard)
            except BaseException:
                query.close()
                raise
            return query

        query = retry.run(
            retry.READS,
            attempt_open,
            down_after_s=self._db.settings.replica.retry_down_after_s,
            what=f"analytics shard {shard}",
        )
        self._queries[shard] = query
        return query

    def _close(self, shard: str) -> None:
        query = self._queries.pop(shard, None)
        if query is None:
            return
        try:
            query.close()
        except Exception as exc:  # closing must never mask the call's own outcome
            log.debug("closing the analytics reader of shard %s failed: %s", shard, exc)


def _named(shard: str, exc: BaseException | None) -> BaseException:
    """Return ``exc``, made a ShardUnavailable naming ``shard`` when it is one."""
    if isinstance(exc, ShardUnavailable) and exc.shard != shard:
        error = ShardUnavailable(shard, str(exc), disconnect=exc.disconnect)
        error.__cause__ = exc
        return error
    assert exc is not None
    return exc
