"""The bulk path: one transaction per shard, fed by COPY, committed together.

Each shard gets a :class:`ShardWriter`: a connection as the schema owner (the
owner may disable the tables' triggers), one two-phase-capable transaction,
and a worker thread that runs ``COPY <table> (<columns>) FROM STDIN`` for each
batch in order. The generator (numpy, one Python thread) produces the next
batches while the three shards ingest the previous ones; queues are bounded,
so at most a few batches per shard are in memory.

Nothing is visible until the end: the writers commit with the platform's
two-phase protocol and its decision record (:mod:`elearn_data.sharding.twophase`),
so a failure anywhere -- a constraint, a lost shard, a content store error --
leaves every shard as it was.
"""

from __future__ import annotations

import io
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Engine

from elearn_data.config import Settings, with_user
from elearn_data.dberrors import translate
from elearn_data.errors import ElearnDataError
from elearn_data.seeding.columns import BINARY_HEADER, BINARY_TRAILER
from elearn_data.seeding.plan import Batch
from elearn_data.sharding import twophase
from elearn_data.sharding.consistency import PRIMARY_ONLY, CausalToken, current_lsn
from elearn_data.sharding.engines import build_engine

COPY_CHUNK: Final = 1 << 20
QUEUE_DEPTH: Final = 4

# Indexes of the given tables that back no constraint (plain and partial unique indexes).
_PLAIN_INDEXES: Final = """
SELECT i.relname, pg_get_indexdef(x.indexrelid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relnamespace = current_schema()::regnamespace
  AND t.relname = ANY(%(tables)s)
  AND NOT EXISTS (
      SELECT 1 FROM pg_constraint k
      WHERE k.conindid = x.indexrelid AND k.contype IN ('p', 'u', 'x')
  )
ORDER BY i.relname
"""
# Primary keys, unique constraints and foreign keys on (or pointing at) the given tables.
_KEYS: Final = """
SELECT t.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)
FROM pg_constraint k
JOIN pg_class t ON t.oid = k.conrelid
LEFT JOIN pg_class r ON r.oid = k.confrelid
WHERE k.connamespace = current_schema()::regnamespace
  AND k.contype IN ('p', 'u', 'f')
  AND (t.relname = ANY(%(tables)s) OR r.relname = ANY(%(tables)s))
ORDER BY t.relname, k.conname
"""


@dataclass
class _Job:
    run: Callable[[Any], Any]
    result: Future[Any] | None = None


class ShardWriter:
    """One shard's seeding transaction, written by a worker thread in submission order."""

    def __init__(self, shard: str, settings: Settings, gid: str) -> None:
        primary = settings.shards[shard].primary
        assert primary is not None  # validated settings always have one
        owner_user, owner_password = settings.owner_credentials()
        self.shard = shard
        self.rows: dict[str, int] = defaultdict(int)
        self.busy_s = 0.0
        self._engine: Engine = build_engine(
            with_user(primary, owner_user),
            settings=settings,
            password=owner_password or settings.shard_password(shard),
            application="elearn_data-seed",
            pooled=False,
        )
        self._error: BaseException | None = None
        self._keys: list[tuple[str, str, str, str]] = []
        self._indexes: list[tuple[str, str]] = []
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        try:
            # The driver in autocommit: the transaction is sent as SQL, as a unit
            # of work's writer sends it (twophase.ServerTransaction).
            self.connection: Connection = self._engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            )
            # A large load runs for minutes: no statement timeout; timestamps
            # written without a zone are UTC. lock_timeout stays: a table held
            # by someone else fails the run instead of hanging it.
            self.connection.exec_driver_sql("SET statement_timeout = 0")
            self.connection.exec_driver_sql("SET TIME ZONE 'UTC'")
            # Index builds after the load sort in memory rather than on disk.
            self.connection.exec_driver_sql("SET maintenance_work_mem = '512MB'")
            self.connection.commit()  # SQLAlchemy's autobegun bookkeeping only
            self.transaction = twophase.ServerTransaction(self.connection, gid, begin_now=True)
        except Exception as exc:
            self._engine.dispose()
            raise translate(exc, shard) from exc
        self._dbapi: Any = self.connection.connection.dbapi_connection
        self._thread = threading.Thread(target=self._work, name=f"seed-{shard}", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- worker

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is not None:
                    if job.result is not None:
                        job.result.set_exception(self._error)
                    continue
                started = time.perf_counter()
                try:
                    with self._dbapi.cursor() as cursor:
                        value = job.run(cursor)
                except BaseException as exc:
                    self._error = exc
                    if job.result is not None:
                        job.result.set_exception(exc)
                else:
                    if job.result is not None:
                        job.result.set_result(value)
                finally:
                    self.busy_s += time.perf_counter() - started
            finally:
                self._jobs.task_done()

    def _submit(self, run: Callable[[Any], Any], *, result: bool = False) -> Future[Any] | None:
        self._raise_pending()
        future: Future[Any] | None = Future() if result else None
        self._jobs.put(_Job(run, future))
        return future

    def _raise_pending(self) -> None:
        if self._error is not None:
            error = self._error
            raise translate(error, self.shard) from error

    # ----------------------------------------------------------------- public

    def copy(self, batch: Batch) -> None:
        """Queue a COPY of the batch's rows (nothing for an empty batch)."""
        if not batch.rows:
            return
        self.rows[batch.table] += batch.rows
        statement = f"COPY {batch.table} ({', '.join(batch.columns)}) FROM STDIN"
        payload = batch.payload
        if batch.binary:
            statement += " (FORMAT binary)"
            payload = BINARY_HEADER + payload + BINARY_TRAILER

        def run(cursor: Any) -> None:
            cursor.copy_expert(statement, io.BytesIO(payload), size=COPY_CHUNK)

        self._submit(run)

    def notify(self, callback: Callable[[], None]) -> None:
        """Queue ``callback`` to run after everything queued so far (a progress marker)."""

        def run(_cursor: Any) -> None:
            callback()

        self._submit(run)

    @property
    def deferred_statements(self) -> int:
        """How many statements :meth:`restore_indexes` will run."""
        return len(self._keys) + len(self._indexes)

    def execute(self, sql: str, params: Any = None) -> None:
        """Queue a statement (in order with the COPYs)."""
        self._submit(lambda cursor: cursor.execute(sql, params))

    def query(self, sql: str, params: Any = None) -> Future[Any]:
        """Queue a query; the future gives its rows."""

        def run(cursor: Any) -> list[tuple[Any, ...]]:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

        future = self._submit(run, result=True)
        assert future is not None
        return future

    def defer_indexes(self, tables: tuple[str, ...]) -> None:
        """Drop the tables' keys, foreign keys and indexes until :meth:`restore_indexes`.

        Maintaining a dozen B-trees row by row (and checking a foreign key per
        row) costs several times the load itself once the indexes outgrow
        shared_buffers; building them once from sorted data after the load is
        what pg_restore does. The definitions are read from the catalog and
        recreated verbatim (same names), inside this transaction: a failed run
        rolls the drops back with everything else.
        """
        if not tables:
            return
        params = {"tables": list(tables)}
        keys = self.query(_KEYS, params).result()
        indexes = self.query(_PLAIN_INDEXES, params).result()
        self._keys = [(str(t), str(n), str(c), str(d)) for t, n, c, d in keys]
        self._indexes = [(str(n), str(d)) for n, d in indexes]
        for table, name, kind, _ in self._keys:
            if kind == "f":
                self.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for table, name, kind, _ in self._keys:
            if kind != "f":
                self.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in self._indexes:
            self.execute(f'DROP INDEX "{name}"')

    def restore_indexes(self, done: Callable[[], None] | None = None) -> None:
        """Recreate what :meth:`defer_indexes` dropped: keys, then indexes, then foreign keys.

        ``done`` is called (from the worker thread) after each statement.
        """

        def step() -> None:
            if done is not None:
                self.notify(done)

        for table, name, kind, definition in self._keys:
            if kind != "f":
                self.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
                step()
        for _, definition in self._indexes:
            self.execute(definition)
            step()
        for table, name, kind, definition in self._keys:
            if kind == "f":
                self.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
                step()
        self._keys, self._indexes = [], []

    def flush(self) -> None:
        """Wait until every queued job ran.

        Raises:
            ElearnDataError: a job failed (translated from the driver's error).
        """
        self._jobs.join()
        self._raise_pending()

    def stop(self) -> None:
        """Stop the worker thread (after the queue drained)."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()

    def rollback(self) -> None:
        """Roll the transaction back (best effort) and close the connection."""
        self.stop()
        try:
            if self.transaction.is_active:
                self.transaction.rollback()
        except Exception:  # noqa: S110 - the connection may be gone already
            pass
        self.close()

    def close(self) -> None:
        """Close the connection and its engine."""
        try:
            self.connection.close()
        finally:
            self._engine.dispose()


def commit_all(writers: dict[str, ShardWriter], coordinator: str, gid: str) -> CausalToken:
    """Commit every shard's transaction atomically; return the causal token of the commit.

    Raises:
        ElearnDataError: the commit failed before its decision (nothing was committed).
    """
    for writer in writers.values():
        writer.flush()
        writer.stop()
    participants = {
        shard: twophase.Participant(shard, w.connection, w.transaction)
        for shard, w in writers.items()
    }
    try:
        result = twophase.commit_all(participants, coordinator, gid)
    except ElearnDataError:
        raise
    except Exception as exc:
        raise translate(exc, coordinator) from exc
    lsns: dict[str, int] = dict(result.positions)
    for shard in result.committed:
        if shard in lsns:
            continue
        connection = writers[shard].connection
        try:
            lsns[shard] = current_lsn(connection)
        except Exception:  # committed, position unknown: readers use the primary
            lsns[shard] = PRIMARY_ONLY
    return CausalToken(lsns)
