"""Rate limits that hold across every worker: GCRA buckets in one SQLite file.

Every worker process of ``elearn serve`` (and every thread of each) opens the
same SQLite database (``Settings.web.rate_limit_store``, by default
``<home>/web/ratelimit.sqlite3``) in WAL mode. A bucket is one row: the key
(``addr:<client address>`` or ``acct:<user id>``) and its theoretical arrival
time (the generic cell rate algorithm, as in Redis-cell or Stripe's limiter):
``requests`` per ``per_s`` seconds, with bursts of up to ``requests``. A hit is
one atomic UPSERT, so two workers can never both take the last slot, and
the wait is exact (``Retry-After``). It costs tens of microseconds, no network
round trip, and survives restarts.

Why not PostgreSQL: a limiter row per request on a shard primary would add a
commit (and WAL for the replicas) to every call, reads included, and would tie
the API's availability to one shard. Why not per-process counters: a client
spread over N workers would get N times its limit. The file holds for one host
(all workers of one ``elearn serve``); several hosts behind one balancer need a
shared store (e.g. Redis with the same algorithm) -- the :class:`RateLimiter`
interface is the seam for it. Durability is relaxed on purpose
(``synchronous=OFF``): a power cut may forget the last counters, which only
forgives a few requests.
"""

from __future__ import annotations

import logging
import math
import os
import random
import sqlite3
import threading
import time
from pathlib import Path

from elearn_data.config import RateLimit, Settings

log = logging.getLogger(__name__)

STORE_FILE = Path("web") / "ratelimit.sqlite3"
_BUSY_TIMEOUT_S = 2.0
# One hit in this many also deletes buckets that have drained (they hold no state).
_SWEEP_EVERY = 2000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, tat REAL NOT NULL) WITHOUT ROWID"
)
# Take a slot unless the bucket is full: the new arrival time is max(tat, now) + interval;
# the WHERE refuses it when that is further than `burst` seconds ahead of now.
_HIT = (
    "INSERT INTO buckets (key, tat) VALUES (:key, :now + :interval)"
    " ON CONFLICT (key) DO UPDATE SET tat = max(tat, :now) + :interval"
    " WHERE max(tat, :now) + :interval - :now <= :burst"
    " RETURNING tat"
)
_TAT = "SELECT tat FROM buckets WHERE key = :key"
_SWEEP = "DELETE FROM buckets WHERE tat < :now"


def store_path(settings: Settings) -> Path:
    """Return the shared store of ``settings`` (``web.rate_limit_store`` or under the home)."""
    return settings.web.rate_limit_store or settings.home / STORE_FILE


class RateLimiter:
    """GCRA buckets shared by every process that opens the same file (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Client addresses and account ids: readable by the server's user only (SQLite
        # gives its -wal and -shm files the database file's permissions).
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        conn = self._conn()
        conn.execute(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def hit(self, key: str, limit: RateLimit, *, now: float | None = None) -> float | None:
        """Take one slot of ``key``'s bucket; return None, or the seconds to wait when full."""
        at = time.time() if now is None else now
        interval = limit.per_s / limit.requests
        params = {"key": key, "now": at, "interval": interval, "burst": limit.per_s}
        conn = self._conn()
        try:
            taken = conn.execute(_HIT, params).fetchone()
            if random.randrange(_SWEEP_EVERY) == 0:  # noqa: S311 - load spreading, not security
                conn.execute(_SWEEP, {"now": at})
            if taken is not None:
                return None
            row = conn.execute(_TAT, {"key": key}).fetchone()
        except sqlite3.OperationalError as exc:
            # A locked or broken store must not take the API down: let the call through.
            log.warning("rate-limit store %s unavailable, not limiting: %s", self.path, exc)
            return None
        tat = float(row[0]) if row else at
        return max(tat + interval - at - limit.per_s, 0.001)

    def reset(self) -> None:
        """Forget every bucket (tests and operators)."""
        self._conn().execute("DELETE FROM buckets")

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


def retry_after_header(seconds: float) -> str:
    """Return a Retry-After value (whole seconds, at least 1)."""
    return str(max(1, math.ceil(seconds)))
