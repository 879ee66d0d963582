"""A writer's transaction is sent as SQL over an autocommit driver (twophase.ServerTransaction).

``BEGIN`` travels with the first statement (``engines.BeginsFirst``) and a
plain commit reads the causal token's position in its own round trip
(``COMMIT; SELECT ...``): a one-shard write is two round trips. These tests
pin what that must keep: the first statement really is inside the
transaction (a later failure takes it back), nothing is left behind in the
pool (no transaction open, no ``BEGIN`` waiting for a statement), and the
token covers the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import bindparam, event, insert, text, update

from elearn_data import ids
from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.errors import InvalidInput
from elearn_data.models import User
from elearn_data.regions import Region
from elearn_data.sharding.engines import BeginsFirst
from tests.integration.reliability.drills import (
    admin,
    insert_user_on,
    present_user_ids,
    wal_position,
)


@contextmanager
def _sent(db: Database, shard: str) -> Iterator[list[tuple[str, type]]]:
    """(statement, cursor class) of everything the shard's primary engine runs in the block."""
    seen: list[tuple[str, type]] = []

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append((statement, type(cursor)))

    engine = db.cluster.engines.primary(shard).engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _pool_is_clean(db: Database, shard: str) -> None:
    """Every idle connection of the shard's primary pool: no transaction, no BEGIN waiting."""
    pool = db.cluster.engines.primary(shard).engine.pool
    taken = [pool.connect() for _ in range(pool.checkedin())]
    try:
        for fairy in taken:
            dbapi: Any = fairy.dbapi_connection
            assert dbapi.cursor_factory is None
            assert dbapi.info.transaction_status == 0  # idle
    finally:
        for fairy in taken:
            fairy.close()


def test_a_one_shard_write_is_two_round_trips_and_its_token_covers_the_commit(
    clean: Database, cluster: LocalCluster
) -> None:
    before = wal_position(cluster, "eu")
    with _sent(clean, "eu") as sent, clean.writer("eu") as uow:
        user_id = insert_user_on(uow, "eu")
    # The INSERT on the cursor that prefixes BEGIN, then COMMIT with the position.
    assert [statement.split()[0] for statement, _ in sent] == ["INSERT", "COMMIT;"]
    assert sent[0][1] is BeginsFirst
    assert sent[1][0].startswith("COMMIT; SELECT pg_wal_lsn_diff")
    position = uow.committed_token.get("eu")
    assert position is not None and before < position <= wal_position(cluster, "eu")
    assert clean.users.get(user_id).id == user_id
    _pool_is_clean(clean, "eu")


def test_the_first_statement_is_inside_the_transaction(
    clean: Database, cluster: LocalCluster
) -> None:
    # Had the first INSERT run outside the transaction, it would stay.
    written: list[uuid.UUID] = []
    with pytest.raises(InvalidInput), clean.writer("eu") as uow:
        written.append(insert_user_on(uow, "eu"))
        uow.execute(text("SELECT 1 / 0"), shard="eu")
    assert present_user_ids(cluster, "eu", written) == set()
    _pool_is_clean(clean, "eu")


def _last_names(cluster: LocalCluster, wanted: list[uuid.UUID]) -> set[str]:
    conn = admin(cluster, cluster.state().primary_of("eu"))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT last_name FROM users WHERE id = ANY(%s::uuid[])",
                ([str(u) for u in wanted],),
            )
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def test_several_rows_and_several_parameter_sets_begin_the_transaction_too(
    clean: Database, cluster: LocalCluster
) -> None:
    rows = [
        {
            "id": ids.new_id(Region.EUROPE),
            "email": f"many{n}@example.org",
            "password_hash": "x",
            "first_name": "Many",
            "last_name": f"Rows {n}",
            "region": Region.EUROPE.value,
            "role": "student",
        }
        for n in range(3)
    ]
    wanted = [r["id"] for r in rows]
    with pytest.raises(InvalidInput), clean.writer("eu") as uow:
        uow.execute(insert(User), rows, shard="eu")  # one multi-row INSERT string
        uow.execute(text("SELECT 1 / 0"), shard="eu")
    assert present_user_ids(cluster, "eu", wanted) == set()
    with clean.writer("eu") as uow:
        uow.execute(insert(User), rows, shard="eu")
    assert present_user_ids(cluster, "eu", wanted) == set(wanted)
    # An UPDATE with several parameter sets: the driver's batch (bytes), BEGIN sent alone first.
    rename = update(User).where(User.id == bindparam("uid")).values(last_name=bindparam("new_name"))
    renames = [{"uid": uid, "new_name": "Renamed"} for uid in wanted]
    with _sent(clean, "eu") as sent, pytest.raises(InvalidInput), clean.writer("eu") as uow:
        uow.execute(rename, renames, shard="eu")
        uow.execute(text("SELECT 1 / 0"), shard="eu")
    assert any(statement.startswith("UPDATE") and cls is BeginsFirst for statement, cls in sent)
    assert _last_names(cluster, wanted) == {"Rows 0", "Rows 1", "Rows 2"}
    _pool_is_clean(clean, "eu")


def test_a_writer_that_ran_nothing_leaves_no_begin_waiting_in_the_pool(clean: Database) -> None:
    with clean.writer("eu") as uow:
        uow.connection("eu")  # opened, never used: nothing began on the server
    assert uow.committed_token.get("eu") is not None
    with pytest.raises(RuntimeError, match="before any statement"), clean.writer("eu") as uow:
        uow.connection("eu")
        raise RuntimeError("before any statement")
    _pool_is_clean(clean, "eu")
