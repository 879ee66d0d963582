"""Parallel fan-out of one analytics call over every shard.

ShardedSession runs the shards of a statement one after another; analytics
needs every shard at once. :class:`FanOut` runs each shard's part on a worker
thread of one process-wide pool (threads outlive calls: a call pays a hand-off,
not a thread's start and join), with its own reader unit of work per shard: a
replica that has replayed the caller's causal token (or the primary when no
replica can serve), in one read-only REPEATABLE READ snapshot that lasts for
the whole call. A call that needs several rounds (the top-N algorithm)
therefore sees each shard's data as of one instant, and every round runs on all
shards in parallel. One shard's statements run one after another (a connection
is never used by two threads at once), whichever pool thread runs them.

A call that asks each shard one statement (``FanOut.each``, the
one-statement analytics) needs neither threads nor snapshots: the calling
thread sends the statement to every shard's replica on its asynchronous
connection (:mod:`~elearn_data.sharding.multiplex`) and waits on every socket
at once; a shard the selector cannot take that way (a lag check or a causal
wait due, a primary, an engine with listeners) is read on a pool thread
meanwhile, as above.

Each shard has ``timeout_s`` for the whole call: the server is told the same
budget (``SET LOCAL statement_timeout``, or the same setting sent with the one
statement), so a query nobody waits for any more is cancelled on the server
too, and the client stops waiting at the deadline even for a server that
cannot answer at all. A shard that fails -- down, timed out, cancelled -- ends
the call with :class:`~elearn_data.errors.ShardUnavailable` naming that shard,
as soon as the failure is known (the other shards' threads are not waited
for; statements sent from the calling thread are, each within the budget).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Executable
from sqlalchemy.exc import SQLAlchemyError

from elearn_data import retry
from elearn_data.dberrors import translate
from elearn_data.errors import ShardUnavailable
from elearn_data.sharding import multiplex
from elearn_data.sharding.unit_of_work import PreparedRead, UnitOfWork

if TYPE_CHECKING:
    from types import TracebackType

    from elearn_data.services.base import CausalCluster

log = logging.getLogger(__name__)

T = TypeVar("T")

THREAD_PREFIX = "elearn-analytics"
# Shared by every fan-out of the process. A worker still busy with a statement
# its call stopped waiting for (past the deadline) holds its thread until the
# server's statement timeout ends it; further calls queue for the others.
POOL_THREADS = 32
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL  # noqa: PLW0603 -- one pool per process, created on first use
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix=THREAD_PREFIX)
        return _POOL


class ShardQuery:
    """One shard's reader inside a fan-out: run aggregate statements, get plain dicts.

    In a snapshot every statement reads the shard as of one instant. Without
    one (``budget_ms``: the fan-out's remaining budget) the shard answers one
    statement, itself a snapshot, sent with its timeout in one round trip.
    """

    def __init__(
        self, shard: str, uow: UnitOfWork, budget_ms: Callable[[], int] | None = None
    ) -> None:
        self.shard = shard
        self._uow = uow
        self._budget_ms = budget_ms
        self._asked = False

    def _execute(self, statement: Executable, params: dict[str, Any]) -> Any:
        if self._budget_ms is None:
            return self._uow.execute(statement, params or None, shard=self.shard)
        self._one_statement()
        return self._uow.execute_with_timeout(
            statement, params, shard=self.shard, timeout_ms=self._budget_ms()
        )

    def _one_statement(self) -> None:
        if self._asked:
            raise RuntimeError(
                "a fan-out without a snapshot asks each shard one statement;"
                " use FanOut(..., snapshot=True) for several"
            )
        self._asked = True

    @property
    def node(self) -> str:
        """``shard/role@host:port`` of the node serving this shard's reads."""
        choice = self._uow.choices.get(self.shard)
        return choice.node.label if choice is not None else f"{self.shard}/?"

    def prepared(self, query: PreparedRead, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Return the rows of the timed prepared read ``query`` (see :meth:`FanOut.each`)."""
        if self._budget_ms is None:
            raise RuntimeError("a timed prepared read runs in a fan-out without snapshot")
        self._one_statement()
        try:
            return self._uow.fetch_prepared_rows(
                query, (self._budget_ms(), *args), shard=self.shard
            )
        except SQLAlchemyError as exc:
            raise translate(exc, self.shard) from exc

    def rows(self, statement: Executable, **params: Any) -> list[dict[str, Any]]:
        """Return the rows of ``statement`` as dicts (column name -> value)."""
        return [dict(row._mapping) for row in self._execute(statement, params)]

    def one(self, statement: Executable, **params: Any) -> dict[str, Any]:
        """Return the single row of ``statement`` as a dict."""
        return dict(self._execute(statement, params).one()._mapping)

    def scalar(self, statement: Executable, **params: Any) -> Any:
        """Return the first column of the first row of ``statement`` (or None)."""
        return self._execute(statement, params).scalar()

    def close(self) -> None:
        """End the snapshot and return the connection (the unit of work discards a broken one)."""
        self._uow.close()


class FanOut:
    """Per-shard workers and snapshots for one analytics call (a context manager).

    ``run(work)`` calls ``work(query)`` for every shard at once, on pool
    threads, and returns ``{shard: result}`` in shard order. ``snapshot=False``
    is for calls that ask each shard one statement (one round, one query):
    the statement is its own snapshot, so none is opened and ended around it,
    and its timeout travels with it (``UnitOfWork.execute_with_timeout``); a
    second statement to the same shard raises ``RuntimeError``. After a shard
    failed or was late, the fan-out is finished: ``run`` refuses further rounds
    (a late shard's worker may still be using its connection).
    """

    def __init__(
        self,
        db: CausalCluster,
        *,
        timeout_s: float,
        shards: Sequence[str] | None = None,
        snapshot: bool = True,
    ) -> None:
        self._db = db
        self.timeout_s = timeout_s
        self.snapshot = snapshot
        self.shards: tuple[str, ...] = tuple(shards or db.router.shards)
        self._queries: dict[str, ShardQuery] = {}
        # Each shard's last submitted work: the next one for the shard starts after it.
        self._last: dict[str, Future[Any]] = {}
        self._deadline = 0.0
        self._open_block = False
        self._abandoned = False
        # {shard: node label} of the shards each() read on an asynchronous connection.
        self._multiplexed: dict[str, str] = {}

    def __enter__(self) -> FanOut:
        self._deadline = time.monotonic() + self.timeout_s
        self._open_block = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open_block = False
        # Each shard's snapshot ends on a pool thread after the shard's last
        # work, and the call does not wait for it: the caller has its results,
        # and the ROLLBACK's round trip is off its path. A connection is never
        # used by two threads at once (the close follows the last work) and
        # never returns to the pool with its transaction open. A late shard's
        # worker (past the deadline, or still opening its snapshot when another
        # shard's failure ended the call) closes when its statement ends; the
        # server's statement timeout bounds that.
        for shard, last in self._last.items():
            if last.done():
                _pool().submit(self._close, shard)
            else:
                last.add_done_callback(functools.partial(self._close_after, shard))
        self._last = {}

    @property
    def nodes(self) -> dict[str, str]:
        """``{shard: node label}`` of the nodes that answered so far."""
        found = dict(self._multiplexed)
        found.update({shard: query.node for shard, query in self._queries.items()})
        return {shard: found[shard] for shard in self.shards if shard in found}

    def remaining(self) -> float:
        """Seconds left of the per-shard budget of this call."""
        return max(0.0, self._deadline - time.monotonic())

    def _budget_ms(self) -> int:
        """What is left of the budget, as the server's statement timeout (at least 1 ms)."""
        return max(1, math.ceil(self.remaining() * 1000))

    def run(
        self, work: Callable[[ShardQuery], T], shards: Sequence[str] | None = None
    ) -> dict[str, T]:
        """Run ``work`` on every shard (or on ``shards``) in parallel; return results by shard.

        Raises:
            ShardUnavailable: a shard failed or did not answer in time (names the shard).
        """
        self._check_runnable("run")
        targets = tuple(shards or self.shards)
        futures = {shard: self._submit(shard, work) for shard in targets}
        return self._gather(targets, futures, {})

    def each(self, query: PreparedRead, *args: Any) -> dict[str, list[tuple[Any, ...]]]:
        """Ask every shard one timed prepared read at once; return each shard's rows.

        The path of the one-statement calls (a fan-out without snapshot, and
        ``query`` built with ``timed=True``: what is left of the budget is its
        statement timeout). The calling thread sends the statement to every
        shard whose replica the selector takes without a query, on that
        replica's asynchronous connection
        (:mod:`~elearn_data.sharding.multiplex`), and waits on every socket at
        once, until the deadline: no hand-off to a thread and no wake-up per
        shard, and the statements start together. The other shards (a lag check
        or a causal wait due, a primary, an engine with listeners) and a shard
        whose asynchronous connection was lost are read on pool threads, as
        :meth:`run` reads them, at the same time. Rows come in the statement's
        column order (``query.columns``).

        Raises:
            RuntimeError: a fan-out with a snapshot, or ``query`` is not timed.
            ShardUnavailable: a shard failed or did not answer in time (names the shard).
        """
        if self.snapshot or not query.timed:
            raise RuntimeError("each() asks a timed PreparedRead of a fan-out without snapshot")
        self._check_runnable("each")
        targets = self.shards
        timed = (self._budget_ms(), *args)

        def ask(q: ShardQuery) -> list[tuple[Any, ...]]:
            return q.prepared(query, args)

        futures: dict[str, Future[list[tuple[Any, ...]]]] = {}
        outcomes: dict[str, multiplex.Outcome] = {}
        uow = UnitOfWork(self._db.cluster, "reader", None, token=self._db.token)
        sent: list[multiplex.Taken] = []
        try:
            for shard in targets:
                taken = uow.take_multiplexed(shard)
                if taken is None:
                    futures[shard] = self._submit(shard, ask)
                    continue
                multiplex.send(taken, query, timed)
                sent.append(taken)
            outcomes = multiplex.collect(sent, query, timed, deadline=self._deadline)
        finally:
            multiplex.abandon(sent)  # an error before collect: nothing waits for them
            for taken in sent:
                _give_back(taken)
            self._multiplexed.update({s: c.node.label for s, c in uow.choices.items()})
            uow.close()
        for shard, outcome in list(outcomes.items()):
            if isinstance(outcome, multiplex.ConnectionLost):
                log.info("%s; reading it through the engine's connections", outcome)
                del outcomes[shard]
                futures[shard] = self._submit(shard, ask)
        return self._gather(targets, futures, outcomes)

    def _check_runnable(self, method: str) -> None:
        if not self._open_block:
            raise RuntimeError(f"FanOut.{method}() outside its `with` block")
        if self._abandoned:
            raise RuntimeError("this fan-out ended with an unavailable shard; open a new one")

    def _submit(self, shard: str, work: Callable[[ShardQuery], T]) -> Future[T]:
        future = _pool().submit(self._call, shard, work)
        self._last[shard] = future
        return future

    def _gather(
        self,
        targets: Sequence[str],
        futures: dict[str, Future[T]],
        outcomes: dict[str, Any],
    ) -> dict[str, T]:
        """Wait for ``futures`` until the deadline; return every target's result in order.

        ``outcomes``: the shards answered already (rows, or the exception of a
        failure: a :class:`~elearn_data.sharding.multiplex.NoAnswer` is a late
        shard). The first failure in shard order is raised, as soon as it is
        known; a late shard after every failure known.
        """
        known_failure = any(isinstance(o, BaseException) for o in outcomes.values())
        done, pending = wait(
            futures.values(),
            timeout=0 if known_failure else self.remaining(),
            return_when=FIRST_EXCEPTION,
        )
        late = [
            shard
            for shard in targets
            if futures.get(shard) in pending or isinstance(outcomes.get(shard), multiplex.NoAnswer)
        ]
        for shard in targets:
            future = futures.get(shard)
            failure = future.exception() if future in done else outcomes.get(shard)
            if isinstance(failure, BaseException) and not isinstance(failure, multiplex.NoAnswer):
                if pending:
                    self._abandoned = True
                for other in pending:
                    other.cancel()
                raise _named(shard, failure)
        if late:
            self._abandoned = True
            for future in pending:
                future.cancel()
            raise ShardUnavailable(
                late[0],
                f"no answer within {self.timeout_s:g} s (analytics_timeout_s)"
                + (f"; also late: {', '.join(late[1:])}" if len(late) > 1 else ""),
            )
        return {
            shard: futures[shard].result() if shard in futures else outcomes[shard]
            for shard in targets
        }

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
            uow = attempt.track(
                UnitOfWork(
                    self._db.cluster,
                    "reader",
                    shard,
                    token=self._db.token,
                    snapshot=self.snapshot,
                    statement_timeout_ms=self._budget_ms() if self.snapshot else None,
                )
            )
            query = ShardQuery(shard, uow, None if self.snapshot else self._budget_ms)
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

    def _close_after(self, shard: str, _done: Future[Any]) -> None:
        self._close(shard)

    def _close(self, shard: str) -> None:
        query = self._queries.pop(shard, None)
        if query is None:
            return
        try:
            query.close()
        except Exception as exc:  # closing must never mask the call's own outcome
            log.debug("closing the analytics reader of shard %s failed: %s", shard, exc)


def _give_back(taken: multiplex.Taken) -> None:
    """Return ``taken``'s connection to its pool (an invalidated one is discarded)."""
    try:
        taken.fairy.close()
    except SQLAlchemyError as exc:
        log.debug("returning the connection of shard %s failed: %s", taken.shard, exc)


def _named(shard: str, exc: BaseException | None) -> BaseException:
    """Return ``exc``, made a ShardUnavailable naming ``shard`` when it is one."""
    if isinstance(exc, ShardUnavailable) and exc.shard != shard:
        error = ShardUnavailable(shard, str(exc), disconnect=exc.disconnect)
        error.__cause__ = exc
        return error
    assert exc is not None
    return exc
