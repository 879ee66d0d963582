"""Session-level advisory locks on a shard primary: one worker per shard at a time.

Background work that must not run twice at once on a shard -- two-phase
recovery (:data:`elearn_data.sharding.twophase.RECOVERY_LOCK_KEY`) and the
outbox relay (:data:`elearn_data.services.outbox.RELAY_LOCK_KEY`) -- holds
one of these keys on a connection of its own for the whole pass, outside any
transaction (COMMIT PREPARED cannot run in one, and the relay's MongoDB calls
must not keep a transaction open), and releases it when the pass ends. A
connection whose unlock fails is invalidated: the lock ends with its server
session and never stays behind in the pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from elearn_data.dberrors import translate

_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")
_LOCK = text("SELECT pg_advisory_lock(:key) IS NOT NULL")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")


@contextmanager
def advisory_lock(engine: Engine, key: int, *, wait: bool) -> Iterator[Connection | None]:
    """Hold the advisory lock ``key`` on ``engine``'s server for the block.

    Yields the AUTOCOMMIT connection that holds it, or None when ``wait`` is
    False and another session holds it (nothing is held then). With ``wait``
    the block starts once the other holder is done.
    """
    with engine.connect() as raw:
        conn = raw.execution_options(isolation_level="AUTOCOMMIT")
        if not conn.execute(_LOCK if wait else _TRY_LOCK, {"key": key}).scalar_one():
            yield None
            return
        try:
            yield conn
        finally:
            try:
                conn.execute(_UNLOCK, {"key": key})
            except SQLAlchemyError:
                raw.invalidate()
                raise


@contextmanager
def shard_lock(engine: Engine, key: int, *, wait: bool, shard: str) -> Iterator[Connection | None]:
    """:func:`advisory_lock` on ``shard``'s primary, its driver errors translated.

    A lost connection or a down primary comes out as the domain error
    (``ShardUnavailable``), as from any unit of work: callers above the
    repositories never see SQLAlchemy's exceptions.
    """
    try:
        with advisory_lock(engine, key, wait=wait) as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise translate(exc, shard) from exc
