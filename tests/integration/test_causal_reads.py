"""Readers see the caller's own writes (causal tokens), and survive a dead replica."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select, text, update

from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings
from elearn_data.database import Database, connect
from elearn_data.models import User
from elearn_data.regions import Region
from elearn_data.sharding.consistency import CausalToken
from tests.integration.factories import add_user
from tests.integration.observe import recording
from tests.support import forget_failures


def _rename(db: Database, user_id: uuid.UUID, name: str) -> CausalToken:
    with db.writer(Region.EUROPE) as uow:
        uow.session.execute(update(User).where(User.id == user_id).values(first_name=name))
    return uow.committed_token


def _read_name(db: Database, user_id: uuid.UUID, token: CausalToken | None) -> tuple[str, str]:
    with db.reader(token=token) as uow:
        name = uow.session.scalar(select(User.first_name).where(User.id == user_id))
        return str(name), uow.choices["eu"].reason


def test_a_thousand_write_then_read_cycles_with_the_token_are_never_stale(
    clean: Database,
) -> None:
    user_id = add_user(clean, Region.EUROPE)
    stale = 0
    reasons: dict[str, int] = {}
    for i in range(1000):
        token = _rename(clean, user_id, f"n{i}")
        assert token.get("eu") is not None
        name, reason = _read_name(clean, user_id, token)
        reasons[reason] = reasons.get(reason, 0) + 1
        stale += name != f"n{i}"
    assert stale == 0
    # The replica served most reads; the primary only when it had not caught up in time.
    assert reasons.get("replica-caught-up", 0) > 0
    assert set(reasons) <= {"replica-caught-up", "primary-fallback"}


def test_the_connect_object_carries_its_token_automatically(clean: Database) -> None:
    user_id = add_user(clean, Region.EUROPE)
    for i in range(50):
        _rename(clean, user_id, f"auto{i}")
        # No explicit token: the Database merged the writer's token itself.
        assert _read_name(clean, user_id, None)[0] == f"auto{i}"


@pytest.fixture
def asynchronous_commits(migrated: Settings, clean: Database) -> Iterator[Database]:
    """A connect() object whose primary connections commit with synchronous_commit off.

    What an operator's ``ALTER DATABASE ... SET synchronous_commit = off`` gives
    every session; here only this object's connections (the engines' public
    ``connect`` event), so nothing else of the session changes.
    """
    database = connect(migrated)

    def asynchronous(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
        dbapi_connection.commit()

    for shard in database.router.shards:
        event.listen(database.cluster.engines.primary(shard).engine, "connect", asynchronous)
    yield database
    database.close()


def test_a_token_covers_a_commit_made_with_synchronous_commit_off(
    asynchronous_commits: Database,
) -> None:
    # COMMIT returns before its record is written: the WAL write position is
    # behind it, and a reader waiting for that position could miss the write.
    db = asynchronous_commits
    user_id = add_user(db, Region.EUROPE)
    for i in range(50):
        with db.writer(Region.EUROPE) as uow:
            uow.session.execute(update(User).where(User.id == user_id).values(first_name=f"a{i}"))
            assert uow.session.scalar(text("SHOW synchronous_commit")) == "off"
            # Where WAL inserts had got to before the commit: the commit record is after it.
            before = int(
                uow.session.scalar(
                    text("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint")
                )
            )
        token = uow.committed_token.get("eu")
        assert token is not None and token > before
        assert _read_name(db, user_id, None)[0] == f"a{i}"


def test_without_a_token_reads_go_to_a_replica(clean: Database) -> None:
    user_id = add_user(clean, Region.EUROPE)
    _rename(clean, user_id, "whatever")
    _, reason = _read_name(clean, user_id, CausalToken())
    assert reason == "replica"


def test_a_stopped_replica_is_skipped_and_reads_keep_succeeding(
    clean: Database, cluster: LocalCluster
) -> None:
    user_id = add_user(clean, Region.AFRICA)
    # Warm the replica's pool so that dead pooled connections are in play.
    for _ in range(3):
        _read_name(clean, user_id, CausalToken())
    cluster.stop("eu", "replica")
    try:
        with recording(clean, cluster) as seen:
            for _ in range(20):
                with clean.reader(token=CausalToken()) as uow:
                    got = uow.session.scalar(select(User.region).where(User.id == user_id))
                assert got == "africa"
        assert ("eu", "primary") in seen.nodes()
    finally:
        cluster.up()
    replica = clean.cluster.engines.replicas("eu")[0]
    assert replica.health.last_error is not None
    # Leave the session's object as this test found it: the replica in rotation.
    forget_failures(clean, "eu")


def test_a_snapshot_read_on_a_stale_pooled_connection_is_retried(
    clean: Database, cluster: LocalCluster
) -> None:
    user_id = add_user(clean, Region.EUROPE)

    def read() -> object:
        with clean.reader(snapshot=True, token=clean.token) as uow:
            return uow.session.scalar(select(User.region).where(User.id == user_id))

    assert read() == "europe"
    # Kill every application connection on eu's replica: the pool now holds dead ones.
    replica = cluster.state().replicas_of("eu")[0]
    conn = cluster.admin_connect(replica)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'elearn_app'"
        )
    conn.close()
    for _ in range(3):
        assert read() == "europe"
    forget_failures(clean, "eu")  # in case a failed attempt marked the replica down
