"""The two sides of ``bulk_load``: the seeding bulk path, and PostgreSQL's COPY of the same rows.

* Measured: :func:`elearn_data.seeding.seed` with ``reset=True`` -- the whole
  bulk path as ``elearn seed`` runs it: generate a deterministic data set,
  stream it with COPY into every shard (one transaction per shard), compute and
  check the derived rows, commit all shards with two-phase commit. Rows/s is
  PostgreSQL rows written (every table, every shard) over the call's wall time.
  The content store is left out (``content_limit=0``, no preferences): its
  documents are not PostgreSQL rows.
* Baseline: the very rows that run wrote, dumped with ``COPY ... TO STDOUT``
  before the clock starts (into temporary files, so memory stays flat), loaded
  back with ``COPY ... FROM STDIN`` into the same tables: per shard one owner
  connection and one transaction, user triggers disabled as the seeder does,
  all shards in parallel. Nothing but the server's COPY and a commit.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, replace
from typing import IO, Any

from psycopg2 import sql

from elearn_data.bench.data import owner_connection
from elearn_data.bench.measure import Sample
from elearn_data.config import Settings
from elearn_data.database import Database
from elearn_data.seeding import SCALES, Scale, seed
from elearn_data.seeding.runner import RESET_TABLES, SEEDED_TABLES

COPY_CHUNK = 1 << 20


def bench_scale(students: int) -> Scale:
    """A seeding scale of ``students`` learners with the medium scale's proportions.

    Up to 100 learners it is the reference ``small`` data set (the CI smoke run).
    """
    if students <= SCALES["small"].students:
        return replace(SCALES["small"], preferences_limit=0)
    return Scale(
        f"bench-{students}",
        students=students,
        instructors=max(20, students // 50),
        courses=max(50, students // 20),
        enrollments=students * 5,
        transactions=students * 3,
        preferences_limit=0,
    )


class SeedingPath:
    """The measured side: ``seed(db, scale, seed=n, reset=True)``."""

    label = "elearn_data.seeding.seed(reset=True): generate, COPY per shard, check, 2PC commit"

    def __init__(self, db: Database, scale: Scale) -> None:
        self._db = db
        self._scale = scale
        self.last_phases: dict[str, float] = {}

    def load(self, run: int) -> Sample:
        start = time.perf_counter()
        report = seed(self._db, scale=self._scale, seed=run, reset=True, content_limit=0)
        elapsed = time.perf_counter() - start
        self.last_phases = {k: round(v, 3) for k, v in report.phases.items()}
        return Sample(elapsed, report.rows)


@dataclass
class Dump:
    """Every seeded table of every shard, as COPY text in temporary files."""

    files: dict[str, list[tuple[str, IO[bytes]]]]  # shard -> [(table, file)]

    def close(self) -> None:
        for tables in self.files.values():
            for _, handle in tables:
                handle.close()
        self.files = {}


class CopyBaseline:
    """The baseline side: COPY the rows a seeding run wrote back into the same tables."""

    label = "PostgreSQL COPY FROM STDIN of the same rows into the same tables, shards in parallel"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._dump: Dump | None = None

    def dump(self) -> None:
        """Save what the shards hold now (the last load) as the next batch to COPY (not timed)."""
        files: dict[str, list[tuple[str, IO[bytes]]]] = {}
        for shard in self._settings.shard_names:
            conn = owner_connection(self._settings, shard)
            try:
                with conn.cursor() as cur:
                    files[shard] = []
                    for table in SEEDED_TABLES:
                        handle = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 - kept open
                        cur.copy_expert(
                            sql.SQL("COPY {} TO STDOUT").format(sql.Identifier(table)), handle
                        )
                        handle.flush()
                        files[shard].append((table, handle))
                conn.rollback()
            finally:
                conn.close()
        if self._dump is not None:
            self._dump.close()
        self._dump = Dump(files)

    def _load_shard(
        self, shard: str, tables: list[tuple[str, IO[bytes]]], out: dict[str, Any]
    ) -> None:
        try:
            conn = owner_connection(self._settings, shard)
        except Exception as exc:  # reported by the caller
            out[shard] = exc
            return
        try:
            rows = 0
            with conn.cursor() as cur:
                for table in SEEDED_TABLES:
                    cur.execute(
                        sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(sql.Identifier(table))
                    )
                cur.execute(
                    sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
                        sql.SQL(", ").join(sql.Identifier(t) for t in RESET_TABLES)
                    )
                )
                for table, handle in tables:
                    handle.seek(0)
                    cur.copy_expert(
                        sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table)),
                        handle,
                        size=COPY_CHUNK,
                    )
                    rows += cur.rowcount
                for table in SEEDED_TABLES:
                    cur.execute(
                        sql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(sql.Identifier(table))
                    )
            conn.commit()
            out[shard] = rows
        except Exception as exc:
            conn.rollback()
            out[shard] = exc
        finally:
            conn.close()

    def load(self) -> Sample:
        """COPY the last dump back (every shard at once); return the timed sample."""
        if self._dump is None:
            self.dump()
        assert self._dump is not None
        out: dict[str, Any] = {}
        threads = [
            threading.Thread(
                target=self._load_shard, args=(shard, tables, out), name=f"bench-copy-{shard}"
            )
            for shard, tables in self._dump.files.items()
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        for result in out.values():
            if isinstance(result, BaseException):
                raise result
        return Sample(elapsed, sum(out.values()))

    def close(self) -> None:
        if self._dump is not None:
            self._dump.close()
            self._dump = None
