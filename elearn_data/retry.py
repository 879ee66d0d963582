"""The one retry policy: which failures run a call again, how often, and what a retry does first.

Whether a failure may be retried is decided once, where it is made
(:func:`elearn_data.dberrors.translate` for driver errors), and carried by the
error itself:

* a :class:`~elearn_data.errors.ConcurrencyConflict` (serialization failure,
  deadlock, lock timeout, an abort by two-phase recovery) wrote nothing;
* a :class:`~elearn_data.errors.ShardUnavailable` with ``disconnect`` lost its
  connection, not its statement (a pooled connection gone stale after a
  restart or a failover, a node that went away): nothing was written unless
  the commit had started.

Every loop that runs a unit of work again -- ``Database.write`` and the
analytics fan-out's snapshot opening -- calls :func:`run` with its
:class:`RetryPolicy` (:data:`WRITES` or :data:`READS`); no other code decides.
(A reader unit of work replaces a lost connection itself and reruns the
statement, once per shard: :meth:`~elearn_data.sharding.unit_of_work.UnitOfWork.reconnect`.)
The rules:

* a conflict runs the call again while ``attempt <= policy.conflicts``;
* a dropped connection runs it again while ``attempt <= policy.disconnects``
  (one retry: a second failure means the node is down, not stale), never once
  the commit had started (its outcome is then reported, not guessed:
  ``OutcomeUnknown``, ``CommitPending``);
* before a retry after a dropped connection, the replicas that served the
  failed attempt are marked down for ``Settings.replica.retry_down_after_s``,
  so the retry reads another node (or the primary);
* nothing else is retried.

Loops that keep trying until a deadline (finishing a decided two-phase commit,
reading its decision back) pause by one :class:`Backoff` schedule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from elearn_data.errors import ConcurrencyConflict, ElearnDataError, ShardUnavailable

if TYPE_CHECKING:
    from elearn_data.sharding.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How many times a call runs again after each retryable failure (see the module doc)."""

    conflicts: int
    disconnects: int = 1

    def retries(self, error: BaseException, attempt: int, *, commit_started: bool = False) -> bool:
        """Whether a call whose ``attempt``-th run (1-based) failed with ``error`` runs again."""
        if isinstance(error, ConcurrencyConflict):
            return attempt <= self.conflicts
        if isinstance(error, ShardUnavailable) and error.disconnect:
            return not commit_started and attempt <= self.disconnects
        return False


# A write: a conflict wrote nothing, so up to three more tries; a stale connection one.
WRITES = RetryPolicy(conflicts=3)
# A read: one more try on another node after a dropped connection; conflicts are raised.
READS = RetryPolicy(conflicts=0)


class Attempt:
    """One run of a retried call: its number, and the unit of work it used (``track``)."""

    __slots__ = ("number", "uow")

    def __init__(self) -> None:
        self.number = 0
        self.uow: UnitOfWork | None = None

    def track(self, uow: UnitOfWork) -> UnitOfWork:
        """Remember ``uow`` as this attempt's unit of work (its commit state, its replicas)."""
        self.uow = uow
        return uow

    @property
    def commit_started(self) -> bool:
        return self.uow is not None and self.uow.commit_started


def run(
    policy: RetryPolicy,
    work: Callable[[Attempt], T],
    *,
    down_after_s: float,
    what: str,
) -> T:
    """Return ``work(attempt)``, running it again as ``policy`` allows (see the module doc).

    ``work`` builds a fresh unit of work each time and passes it to
    ``attempt.track``; ``what`` names the call in the log.
    """
    attempt = Attempt()
    while True:
        attempt.number += 1
        try:
            return work(attempt)
        except ElearnDataError as error:
            if not policy.retries(error, attempt.number, commit_started=attempt.commit_started):
                raise
            if isinstance(error, ShardUnavailable):
                mark_down_replicas(attempt.uow, error, down_after_s)
                log.info("retrying %s after a dropped connection: %s", what, error)
            else:
                log.debug("retrying %s after a concurrency conflict: %s", what, error)
            attempt.uow = None


def mark_down_replicas(uow: UnitOfWork | None, error: BaseException, for_seconds: float) -> None:
    """Mark the replicas ``uow`` read from down for ``for_seconds`` (its primaries stay)."""
    if uow is None:
        return
    for choice in uow.choices.values():
        if choice.node.role == "replica":
            choice.node.health.mark_down(str(error), for_seconds)


@dataclass(frozen=True)
class Backoff:
    """Pauses between tries until a deadline: ``first_s``, doubling up to ``max_s``."""

    first_s: float = 0.05
    max_s: float = 1.0

    def pauses(self, deadline: float) -> Iterator[float]:
        """Yield the pause to sleep before each next try, while it ends before ``deadline``.

        ``deadline`` is a ``time.monotonic()`` instant; when the iterator is
        exhausted, the time is up (``next(pauses, None)`` is None).
        """
        pause = self.first_s
        while time.monotonic() + pause <= deadline:
            yield pause
            pause = min(pause * 2, self.max_s)


__all__ = ["READS", "WRITES", "Attempt", "Backoff", "RetryPolicy", "mark_down_replicas", "run"]
