"""Cross-shard invariants: what must hold between shards whatever crashed or was restored.

Each shard's own constraints (foreign keys, CHECKs) hold by themselves; these
are the facts no single PostgreSQL can check, because they span shards:

* no two-phase transaction of ours is left prepared;
* a course's seat ledger (on its home shard) counts exactly its live
  enrollments on every shard;
* every email-directory row names a user that exists on its region's shard,
  and every user has exactly one directory row;
* every catalog (reference) table holds the same rows on every shard.

:func:`check_invariants` reads every primary and returns the violations as
sentences (empty when all hold). It is what `elearn backup restore` runs after
a restore, and what a fault drill asserts.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from psycopg2 import sql
from sqlalchemy import text

from elearn_data.models import Base
from elearn_data.models.base import Placement, placement_of
from elearn_data.sharding.twophase import GID_PREFIX

if TYPE_CHECKING:
    from elearn_data.database import Database

_PREPARED = text(
    "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE :prefix"
)
_SEATS = text("SELECT course_id, taken FROM course_seats WHERE capacity IS NOT NULL")
_LIVE = text(
    "SELECT course_id, count(*) FROM enrollments WHERE status <> 'dropped' GROUP BY course_id"
)
_DIRECTORY = text("SELECT user_id, region FROM email_directory")
_USERS = text("SELECT id, region FROM users")


def _rows(db: Database, shard: str, statement: Any) -> list[Any]:
    with db.cluster.engines.primary(shard).engine.connect() as conn:
        return list(conn.execute(statement).all())


def _catalog_digest(db: Database, shard: str) -> dict[str, str]:
    """Return a count and digest of every catalog table's rows on one shard."""
    digests: dict[str, str] = {}
    with db.cluster.engines.primary(shard).engine.connect() as conn:
        dbapi: Any = conn.connection.dbapi_connection
        cursor = dbapi.cursor()
        try:
            for table in Base.metadata.sorted_tables:
                if "placement" not in table.info or placement_of(table) is not Placement.REFERENCE:
                    continue
                cursor.execute(
                    sql.SQL(
                        "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)),"
                        " '') FROM {} AS t"
                    ).format(sql.Identifier(table.name))
                )
                row = cursor.fetchone()
                assert row is not None
                count, digest = row
                digests[table.name] = f"{count}:{digest}"
        finally:
            cursor.close()
        conn.rollback()
    return digests


def check_invariants(db: Database) -> list[str]:
    """Return every violated cross-shard invariant (an empty list when all hold)."""
    shards = list(db.router.shards)
    violations: list[str] = []

    for shard in shards:
        for (gid,) in _rows(db, shard, _PREPARED.bindparams(prefix=f"{GID_PREFIX}:%")):
            violations.append(f"shard {shard}: two-phase transaction {gid} is still prepared")

    live: Counter[uuid.UUID] = Counter()
    for shard in shards:
        for course_id, count in _rows(db, shard, _LIVE):
            live[course_id] += int(count)
    for shard in shards:
        for course_id, taken in _rows(db, shard, _SEATS):
            if int(taken) != live[course_id]:
                violations.append(
                    f"course {course_id}: seat ledger on {shard} says {taken} taken, "
                    f"but {live[course_id]} live enrollments exist"
                )

    users: dict[uuid.UUID, str] = {}
    for shard in shards:
        for user_id, region in _rows(db, shard, _USERS):
            users[user_id] = region
    listed: Counter[uuid.UUID] = Counter()
    for shard in shards:
        for user_id, region in _rows(db, shard, _DIRECTORY):
            listed[user_id] += 1
            if users.get(user_id) != region:
                violations.append(
                    f"directory row on {shard} names user {user_id} in {region}, "
                    "which does not exist there"
                )
    for user_id in users:
        if listed[user_id] != 1:
            violations.append(f"user {user_id} has {listed[user_id]} directory rows, not 1")

    digests = {shard: _catalog_digest(db, shard) for shard in shards}
    first = shards[0]
    for shard in shards[1:]:
        for table, digest in digests[first].items():
            if digests[shard].get(table) != digest:
                violations.append(f"catalog table {table} differs between {first} and {shard}")
    return violations
