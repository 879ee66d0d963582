"""Work a ``connect()`` object does off the request path: two-phase recovery and the outbox relay.

Both run in daemon threads of their :class:`~elearn_data.database.Database` and
never in a caller's call:

* :class:`Recoverer` settles in-doubt two-phase transactions once at start-up
  (``Settings.recover_on_connect``) and then every ``recover_interval_s``. Its
  passes take each shard's recovery lock with ``pg_try_advisory_lock``: when
  several processes connect at once, one of them recovers a shard and the others
  skip it (see :data:`elearn_data.sharding.twophase.RECOVERY_LOCK_KEY`).
* :class:`OutboxRelay` applies the content outbox: a committed unit of work that
  wrote outbox rows *notifies* it (a set of shards, no database work), and the
  relay drains those shards right away; it also sweeps every shard at start-up
  and every ``outbox_interval_s``, retrying the rows that failed before. One
  relayer per shard at a time, across processes, by a session-level
  advisory lock (:data:`elearn_data.services.outbox.RELAY_LOCK_KEY`,
  :mod:`elearn_data.sharding.locks`).

``wait`` / ``wait_idle`` let tests and commands wait for the work requested so
far (no sleeping for a guessed time).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

# A shard whose relay lock another process holds is tried again after this pause
# (that process may have read its batch before our rows committed).
BUSY_RETRY_S = 0.2


class Recoverer:
    """A thread that runs ``recover_pass`` at start-up and then every ``interval_s``."""

    def __init__(
        self, recover_pass: Callable[[], None], *, at_start: bool, interval_s: float
    ) -> None:
        self._pass = recover_pass
        self._at_start = at_start
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        if at_start or interval_s > 0:
            self._thread = threading.Thread(target=self._run, name="elearn-recover", daemon=True)
            self._thread.start()
        else:
            self._started.set()

    def _run(self) -> None:
        try:
            if self._at_start:
                self._pass()
        finally:
            self._started.set()
        if self._interval_s <= 0:
            return
        while not self._stop.wait(self._interval_s):
            self._pass()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the start-up pass; return False if it is still running after ``timeout_s``."""
        return self._started.wait(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread (a pass under way finishes first, up to ``timeout_s``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)


class OutboxRelay:
    """A thread that drains the outbox of the shards it is notified about (and sweeps them all).

    ``drain(shard, retry_failed)`` applies one batch on one shard and returns
    how many rows it applied, or None when another relayer holds the shard's
    lock. A notified pass stops at a row that failed before (it waits for a
    sweep or an explicit ``process_outbox``: a content store that refused once
    is not hammered at every commit); a sweep retries it.
    """

    def __init__(
        self,
        drain: Callable[[str, bool], int | None],
        shards: Iterable[str],
        *,
        interval_s: float,
        batch: int,
        enabled: bool = True,
    ) -> None:
        self._drain = drain
        self._shards = tuple(shards)
        self._interval_s = interval_s
        self._batch = batch
        self._cond = threading.Condition()
        self._dirty: set[str] = set()
        self._requested = 0
        self._done = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        if enabled:
            self._thread = threading.Thread(target=self._run, name="elearn-outbox", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """True while the relay thread runs (False when disabled or stopped)."""
        return self._thread is not None and self._thread.is_alive()

    def notify(self, shards: Iterable[str]) -> None:
        """Ask for a pass over ``shards`` (called after a commit that wrote outbox rows)."""
        with self._cond:
            self._dirty.update(shards)
            self._requested += 1
            self._cond.notify_all()

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until every pass requested so far has run; False on timeout (or no relay)."""
        if not self.running:
            return False
        with self._cond:
            target = self._requested
            return self._cond.wait_for(
                lambda: self._done >= target or self._stopping, timeout=timeout_s
            )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread (a batch under way finishes first, up to ``timeout_s``)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def _next_round(self, sweep: bool) -> tuple[int, list[str], bool] | None:
        """Wait for work; return (generation, shards, sweep) or None when stopping."""
        with self._cond:
            if not sweep and not self._dirty:
                timeout = self._interval_s if self._interval_s > 0 else None
                self._cond.wait_for(lambda: self._dirty or self._stopping, timeout=timeout)
                if not self._dirty and not self._stopping:
                    sweep = True  # the interval passed without a notification
            if self._stopping:
                return None
            shards = list(self._shards) if sweep else sorted(self._dirty)
            self._dirty.clear()
            return self._requested, shards, sweep

    def _run(self) -> None:
        sweep = True  # at start-up: rows left by crashed or closed processes
        while True:
            round_ = self._next_round(sweep)
            if round_ is None:
                return
            generation, shards, sweep = round_
            busy: list[str] = []
            more: list[str] = []
            for shard in shards:
                try:
                    applied = self._drain(shard, sweep)
                except Exception as exc:  # the relay may not die of a down shard
                    log.warning("outbox relay: shard %s not processed: %s", shard, exc)
                    continue
                if applied is None:
                    busy.append(shard)
                elif applied >= self._batch:
                    more.append(shard)
            with self._cond:
                self._dirty.update(more)
                if not busy:
                    self._done = max(self._done, generation)
                    self._cond.notify_all()
            sweep = False
            if busy:
                with self._cond:
                    if self._cond.wait_for(lambda: self._stopping, timeout=BUSY_RETRY_S):
                        return
                    self._dirty.update(busy)
