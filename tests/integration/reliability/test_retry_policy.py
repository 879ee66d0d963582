"""The one retry policy against the real cluster: a dropped connection runs again once, a bug never.

A pooled connection that died while idle never reaches a statement: the
engines' checkout hook replaces it (sharding/engines.py), so there is nothing
to retry. A connection lost while a unit of work holds it is what the policy
is for.

Each test uses its own ``connect()`` object under its own application name,
so that terminating "its" server connections (``pg_terminate_backend``) leaves
every other pool alone. A replica's lag is checked once only
(``check_interval_s``), so a pooled connection killed under it is found by
the statement, not by the check -- the case the policy is for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError, StatementError

from elearn_data.analytics.fanout import FanOut, ShardQuery
from elearn_data.cluster.local import LocalCluster, NodeSpec
from elearn_data.config import ReplicaPolicy, Settings
from elearn_data.database import Database
from elearn_data.errors import ElearnDataError
from elearn_data.sharding.unit_of_work import UnitOfWork

pytestmark = pytest.mark.timeout(120)

APPLICATION = "elearn-retry-policy-test"
IN_RECOVERY = text("SELECT pg_is_in_recovery()")


@pytest.fixture
def own(migrated: Settings) -> Iterator[Database]:
    db = Database(
        migrated.model_copy(
            update={
                "replica": ReplicaPolicy(check_interval_s=3600.0, retry_down_after_s=600.0),
                "recover_on_connect": False,
                "recover_interval_s": 0.0,
            }
        ),
        application=APPLICATION,
    )
    try:
        yield db
    finally:
        db.close()


def terminate_ours(cluster: LocalCluster, node: NodeSpec) -> int:
    """Terminate the test's own idle server connections on ``node``; return how many."""
    conn = cluster.admin_connect(node)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000))"
                " FROM pg_stat_activity WHERE application_name = %s",
                (APPLICATION,),
            )
            row = cur.fetchone()
            assert row is not None
            return int(row[0])
    finally:
        conn.close()


def retry_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "elearn_data.retry"]


def terminate_pid(cluster: LocalCluster, node: NodeSpec, pid: int) -> None:
    """Terminate one server connection (waiting until it is gone)."""
    conn = cluster.admin_connect(node)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
    finally:
        conn.close()


def test_a_read_whose_pooled_replica_connection_was_killed_is_answered_by_the_replica(
    own: Database, cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    # A stale pooled connection is replaced when it is checked out (the engines'
    # checkout hook), before any statement: no failure, so no retry and no
    # replica marked down -- the replica is up, only its old connection died.
    calls: list[bool] = []

    def where(uow: UnitOfWork) -> bool:
        calls.append(True)
        return bool(uow.execute(IN_RECOVERY, shard="eu").scalar_one())

    with own.reader("eu") as uow:  # a replica served it; its connection is pooled
        assert where(uow) is True
    replica = own.cluster.engines.replicas("eu")[0]
    assert terminate_ours(cluster, cluster.state().replicas_of("eu")[0]) >= 1
    calls.clear()
    with caplog.at_level(logging.INFO, logger="elearn_data.retry"), own.reader("eu") as uow:
        assert where(uow) is True
    assert len(calls) == 1
    assert not replica.health.is_down()
    assert retry_messages(caplog) == []


def test_a_write_whose_connection_dies_before_the_commit_runs_once_more(
    own: Database, cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    primary = cluster.state().primary_of("eu")
    calls: list[int] = []

    def write(uow: UnitOfWork) -> int:
        pid = int(uow.execute(text("SELECT pg_backend_pid()"), shard="eu").scalar_one())
        calls.append(pid)
        if len(calls) == 1:
            terminate_pid(cluster, primary, pid)  # lost while the unit of work holds it
            uow.execute(text("SELECT 1"), shard="eu")
        return pid

    with caplog.at_level(logging.INFO, logger="elearn_data.retry"):
        second = own.write("eu", write)
    assert len(calls) == 2  # retry.WRITES ran it once more, on a fresh server connection
    assert second == calls[1] != calls[0]
    (message,) = retry_messages(caplog)
    assert message.startswith("retrying a write after a dropped connection")


def test_the_fan_out_opens_its_snapshot_on_a_new_connection_after_the_pooled_one_died(
    own: Database, cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    def where(query: ShardQuery) -> bool:
        return bool(query.scalar(IN_RECOVERY))

    with FanOut(own, timeout_s=30.0, shards=("eu",)) as fan:
        assert fan.run(where) == {"eu": True}
    assert terminate_ours(cluster, cluster.state().replicas_of("eu")[0]) >= 1
    with (
        caplog.at_level(logging.INFO, logger="elearn_data.retry"),
        FanOut(own, timeout_s=30.0, shards=("eu",)) as fan,
    ):
        assert fan.run(where) == {"eu": True}  # still the replica: it is up
        assert fan.nodes["eu"].startswith("eu/replica")
    assert retry_messages(caplog) == []


@pytest.mark.parametrize("call", ["read", "write"])
def test_a_programming_error_is_raised_unchanged_and_never_rerun(
    own: Database, call: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def unknown_column(uow: UnitOfWork) -> None:
        calls.append(1)
        uow.execute(text("SELECT no_such_column FROM users"), shard="eu")

    def missing_parameter(uow: UnitOfWork) -> None:
        calls.append(1)
        uow.execute(text("SELECT :missing"), {}, shard="eu")

    def read(shard: str, fn: Callable[[UnitOfWork], None]) -> None:
        with own.reader(shard) as uow:
            fn(uow)

    run = read if call == "read" else own.write
    with caplog.at_level(logging.DEBUG, logger="elearn_data.retry"):
        with pytest.raises(ProgrammingError) as server_side:
            run("eu", unknown_column)
        assert isinstance(server_side.value.orig, psycopg2.errors.UndefinedColumn)
        with pytest.raises(StatementError) as client_side:
            run("eu", missing_parameter)
    for raised in (server_side.value, client_side.value):
        assert not isinstance(raised, ElearnDataError)
    assert calls == [1, 1]
    assert retry_messages(caplog) == []
    # The connections stay usable: the next call works at the first attempt.
    with own.reader("eu") as uow:
        assert uow.execute(text("SELECT 1"), shard="eu").scalar_one() == 1
