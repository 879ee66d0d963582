"""Engines through SQLAlchemy's public settings and hooks; the one snapshot mechanism.

* A replica's engine is an autocommit engine (``isolation_level="AUTOCOMMIT"``):
  a brand-new connection is in autocommit before any code of ours touched it.
* A pooled connection whose backend was ended (``pg_terminate_backend``) is
  replaced for a read without the caller seeing an error: before its
  checkout when the server's farewell is waiting on the socket, and through
  the ``handle_error`` hook plus one new connection when it dies in use.
* Snapshots (``db.reader(snapshot=True)`` and the analytics fan-out) are one
  mechanism: a read-only REPEATABLE READ transaction that the unit of work ends,
  and that never goes back to the pool open.
* The current-LSN query is one function, used after a commit on the committing
  connection and leaving it as the pool expects.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg2.extensions
import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.exc import DBAPIError

from elearn_data.analytics import FanOut
from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.errors import ElearnDataError, NotFound
from elearn_data.models import User
from elearn_data.regions import Region
from elearn_data.repositories.users import PREPARED_USER_BY_ID
from elearn_data.sharding.consistency import CausalToken, current_lsn
from elearn_data.sharding.engines import ends_session
from elearn_data.sharding.unit_of_work import UnitOfWork
from tests.integration.factories import add_user

_PID = text("SELECT pg_backend_pid()")
_NOW = text("SELECT now()")
_UOW_LOG = "elearn_data.sharding.unit_of_work"
_LOST = "connection lost, reading on a new one"


def _replica_reader(db: Database, **kw: Any) -> UnitOfWork:
    """A reader of ``eu`` on the replica, with ``db``'s token (waits for it after a drill)."""
    deadline = time.monotonic() + 15
    while True:
        uow = db.reader(Region.EUROPE, **kw)
        uow.connection("eu")
        if uow.choices["eu"].node.role == "replica":
            return uow
        uow.close()
        assert time.monotonic() < deadline, "the eu replica never came back"
        time.sleep(0.1)


def _terminate(cluster: LocalCluster, pid: int) -> None:
    conn = cluster.admin_connect(cluster.state().replicas_of("eu")[0], dbname="elearn")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
            assert cur.fetchone() == (True,)
    finally:
        conn.close()


def test_a_new_replica_connection_is_in_autocommit_by_the_engines_isolation_level(
    clean: Database,
) -> None:
    replica = clean.cluster.engines.replicas("eu")[0]
    replica.engine.dispose()  # the next connection is made now, by SQLAlchemy alone
    with replica.engine.connect() as conn:
        assert conn.connection.dbapi_connection.autocommit is True
        # Each statement is its own transaction: now() moves between them.
        first = conn.execute(_NOW).scalar_one()
        time.sleep(0.01)
        assert conn.execute(_NOW).scalar_one() > first
    primary = clean.cluster.engines.primary("eu")
    with primary.engine.connect() as conn:
        assert conn.connection.dbapi_connection.autocommit is False


def test_a_snapshot_reader_leaves_its_replica_connection_in_autocommit(clean: Database) -> None:
    user_id = add_user(clean, Region.EUROPE)
    with _replica_reader(clean, snapshot=True) as uow:
        conn = uow.connection("eu")
        dbapi = conn.connection.dbapi_connection
        assert uow.execute(select(User.id).where(User.id == user_id), shard="eu").first()
        assert dbapi.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
    assert dbapi.autocommit is True
    assert dbapi.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE


def test_a_terminated_pooled_backend_is_replaced_before_a_read_uses_it(
    clean: Database, cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    user_id = add_user(clean, Region.EUROPE)
    with _replica_reader(clean) as uow:
        pid = uow.execute(_PID, shard="eu").scalar_one()
    _terminate(cluster, pid)
    time.sleep(0.05)  # the server's farewell reaches the pooled socket
    with caplog.at_level(logging.INFO, logger=_UOW_LOG), _replica_reader(clean) as uow:
        assert uow.execute(_PID, shard="eu").scalar_one() != pid
    # Replaced at checkout (the pool's hook), not after a failed statement.
    assert _LOST not in caplog.text
    # The point read's fast path meets the same pool.
    assert clean.users.get(user_id).id == user_id


def test_a_backend_terminated_while_checked_out_is_replaced_for_the_read(
    clean: Database, cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    user_id = add_user(clean, Region.EUROPE)
    for statement in ("core", "orm", "prepared"):
        uow = _replica_reader(clean)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=_UOW_LOG), uow:
            conn = uow.connection("eu")
            pid = conn.execute(_PID).scalar_one()
            conn.commit()
            _terminate(cluster, pid)
            time.sleep(0.05)
            if statement == "core":
                row = uow.execute(select(User.id).where(User.id == user_id), shard="eu").one()
                found = row[0]
            elif statement == "orm":
                found = uow.session.scalar(select(User.id).where(User.id == user_id))
            else:
                prepared = uow.fetch_prepared(PREPARED_USER_BY_ID, (user_id,), shard="eu")
                assert prepared is not None
                found = prepared[0]
            assert found == user_id, statement
            assert uow.execute(_PID, shard="eu").scalar_one() != pid, statement
        # The statement failed, handle_error called it a disconnect, a new connection ran it.
        assert _LOST in caplog.text, statement


def test_a_lost_connection_is_recognised_by_its_sqlstate() -> None:
    class Terminated(Exception):
        pgcode = "57P01"

    class Refused(Exception):
        pgcode = "08006"

    class Unique(Exception):
        pgcode = "23505"

    assert ends_session(Terminated()) and ends_session(Refused())
    assert not ends_session(Unique()) and not ends_session(ValueError())


def test_a_snapshot_is_one_read_only_view_of_its_shard(clean: Database) -> None:
    user_id = add_user(clean, Region.EUROPE)
    with clean.reader(Region.EUROPE, snapshot=True) as uow:
        before = uow.execute(select(User.first_name).where(User.id == user_id)).scalar_one()
        with clean.writer(Region.EUROPE) as writer:
            writer.execute(update(User).where(User.id == user_id).values(first_name="Changed"))
        # Read on the primary too (the token now names the write): same snapshot.
        again = uow.execute(select(User.first_name).where(User.id == user_id)).scalar_one()
        assert again == before != "Changed"
    with clean.reader(Region.EUROPE) as uow:
        assert uow.execute(select(User.first_name).where(User.id == user_id)).scalar_one() == (
            "Changed"
        )
    # Read-only on any node, the primary included.
    primary_only = CausalToken({"eu": 2**63 - 1})
    with (
        pytest.raises(ElearnDataError, match="read-only"),
        clean.reader(Region.EUROPE, snapshot=True, token=primary_only) as uow,
    ):
        uow.connection("eu")
        assert uow.choices["eu"].node.role == "primary"
        uow.execute(update(User).where(User.id == user_id).values(first_name="Nope"))
    with clean.reader(Region.EUROPE) as uow:
        assert uow.execute(select(User.first_name).where(User.id == user_id)).scalar_one() == (
            "Changed"
        )


def test_the_fan_out_uses_the_unit_of_works_snapshot_with_its_timeout(clean: Database) -> None:
    with FanOut(clean, timeout_s=30) as fan:
        seen = fan.run(
            lambda q: q.one(
                text(
                    "SELECT current_setting('transaction_isolation') AS iso,"
                    " current_setting('transaction_read_only') AS ro,"
                    " current_setting('statement_timeout') AS timeout"
                )
            )
        )
    for shard, row in seen.items():
        assert row["iso"] == "repeatable read", shard
        assert row["ro"] == "on", shard
        assert row["timeout"] not in ("0", ""), shard
    # After the call every reader connection is back without a transaction.
    for shard in clean.router.shards:
        with clean.reader(shard, token=CausalToken()) as uow:
            iso = uow.execute(text("SHOW transaction_isolation"), shard=shard).scalar_one()
            assert iso == "read committed", shard


def test_a_snapshot_nobody_ended_never_goes_back_to_the_pool_open(clean: Database) -> None:
    uow = _replica_reader(clean, snapshot=True)
    conn = uow.connection("eu")
    dbapi = conn.connection.dbapi_connection
    assert dbapi.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
    conn.close()  # returned to the pool behind the unit of work's back
    assert dbapi.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    uow.close()


def test_the_current_lsn_after_a_commit_is_a_valid_token_and_leaves_the_connection_default(
    clean: Database,
) -> None:
    primary = clean.cluster.engines.primary("eu")
    with primary.engine.connect() as conn:
        with conn.begin():
            conn.execute(text("SELECT 1"))
        lsn = current_lsn(conn)
        dbapi = conn.connection.dbapi_connection
    assert lsn > 0
    assert dbapi.autocommit is False and dbapi.isolation_level is None
    user_id = add_user(clean, Region.EUROPE)
    assert clean.token.get("eu") is not None and clean.token.lsns["eu"] >= lsn
    with clean.reader(Region.EUROPE) as reader:
        assert reader.execute(select(User.id).where(User.id == user_id)).scalar_one() == user_id


def test_the_current_lsn_is_seen_by_listeners_and_a_lost_connection_is_invalidated(
    clean: Database,
) -> None:
    """Read on the driver when nothing listens; through SQLAlchemy when something does."""
    engine = clean.cluster.engines.primary("eu").engine
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        with engine.connect() as conn:
            assert current_lsn(conn) > 0
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert any("pg_current_wal_lsn" in sql for sql in seen)
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        conn.commit()
        with engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            other.commit()
        with pytest.raises(DBAPIError) as lost:
            current_lsn(conn)
        assert lost.value.connection_invalidated and conn.invalidated


def test_a_unit_of_work_commits_on_success_and_rolls_back_on_error(clean: Database) -> None:
    user_id = add_user(clean, Region.EUROPE)
    merged: list[CausalToken] = []
    uow = UnitOfWork(clean.cluster, "writer", "eu", on_commit=merged.append)
    with uow:
        uow.execute(update(User).where(User.id == user_id).values(first_name="Kept"))
    assert merged == [uow.committed_token] and merged[0].get("eu") is not None
    failing = UnitOfWork(clean.cluster, "writer", "eu", on_commit=merged.append)
    with pytest.raises(NotFound), failing:
        failing.execute(update(User).where(User.id == user_id).values(first_name="Lost"))
        raise NotFound("on purpose")
    assert len(merged) == 1
    with clean.reader(Region.EUROPE, token=merged[0]) as reader:
        assert reader.execute(select(User.first_name).where(User.id == user_id)).scalar_one() == (
            "Kept"
        )
