"""Replica staleness is bounded in time, and lookups across shards read consistently.

* A replica whose replay is paused (``pg_wal_replay_pause()``) while WAL
  arrives serves stale rows even to a reader without a causal token: readers
  skip it and ``health()`` reports it degraded (as it does a replay that stood
  still for ``replica.max_lag_s``).
* ``find_by_email`` reads the directory on one shard and the user on another:
  a home replica behind the directory's must not turn into NotFound.
* A commit whose WAL position cannot be read on its own connection still
  pins the shard in the causal token (read on a fresh connection, or
  ``PRIMARY_ONLY``), so the writer never reads a stale replica of it. A plain
  commit reads its position in the same round trip as its ``COMMIT``: a
  connection cut there is a failed commit, reported, with nothing written.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select

from elearn_data.cluster.local import LocalCluster, NodeSpec
from elearn_data.config import ReplicaPolicy, Settings
from elearn_data.database import Database
from elearn_data.errors import ShardUnavailable
from elearn_data.models import User
from elearn_data.security import normalise_email
from elearn_data.sharding.consistency import PRIMARY_ONLY, CausalToken
from tests.integration.api.helpers import PASSWORD, register
from tests.integration.reliability.drills import (
    admin,
    insert_user_on,
    present_user_ids,
    wait_replayed,
    wal_position,
)
from tests.integration.reliability.test_twophase_edges import _email_away_from

pytestmark = pytest.mark.timeout(120)


def _connect(settings: Settings, **policy: Any) -> Database:
    """A second connect() object (no causal token of the writer's) with a replica policy."""
    return Database(
        settings.model_copy(
            update={
                "replica": ReplicaPolicy(**policy),
                "recover_on_connect": False,
                "recover_interval_s": 0.0,
            }
        )
    )


def _replica(cluster: LocalCluster, shard: str) -> NodeSpec:
    return cluster.state().replicas_of(shard)[0]


@contextmanager
def _paused_replay(cluster: LocalCluster, shard: str) -> Iterator[NodeSpec]:
    replica = _replica(cluster, shard)
    conn = admin(cluster, replica)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_wal_replay_pause()")
        yield replica
    finally:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_wal_replay_resume()")
        conn.close()
        wait_replayed(cluster, shard)


def _wait_stale(
    cluster: LocalCluster, replica: NodeSpec, age_s: float, timeout_s: float = 30
) -> None:
    """Wait until the replica has WAL it has not replayed, and its last replay is ``age_s`` old."""
    conn = admin(cluster, replica)
    deadline = time.monotonic() + timeout_s
    try:
        with conn.cursor() as cur:
            while True:
                cur.execute(
                    "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn(),"
                    " extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
                )
                pending, age = cur.fetchone()
                if pending and age is not None and float(age) > age_s:
                    return
                assert time.monotonic() < deadline, "the replica never fell behind"
                time.sleep(0.05)
    finally:
        conn.close()


def test_a_reader_without_a_token_skips_a_replica_whose_replay_is_paused(
    clean: Database, cluster: LocalCluster, settings: Settings
) -> None:
    other = _connect(settings, max_lag_s=0.2, check_interval_s=0.05)
    try:
        wait_replayed(cluster, "eu")
        with _paused_replay(cluster, "eu") as replica:
            with clean.writer("eu") as uow:
                user_id = insert_user_on(uow, "eu")
            _wait_stale(cluster, replica, 0.0)
            # Every read of the other object sees the row: none comes from the paused replica.
            for _ in range(20):
                assert other.users.get(user_id).id == user_id
            report = other.health()
            [node] = [n for n in report.nodes if n.shard == "eu" and n.role == "replica"]
            assert node.degraded
            assert not report.ok
            assert any("degraded" in problem for problem in report.problems)
        # Replayed again: no longer degraded.
        healed = other.health()
        assert not [n for n in healed.nodes if n.degraded]
    finally:
        other.close()


def test_find_by_email_and_authenticate_survive_a_home_replica_behind_the_directory(
    clean: Database, cluster: LocalCluster, settings: Settings
) -> None:
    # A time bound far away: the lagging home replica stays in use for this test.
    other = _connect(settings, max_lag_s=3600, check_interval_s=0.05)
    try:
        email = _email_away_from(clean, "eu")
        directory = clean.router.directory_shard(clean.users._emails.digest(normalise_email(email)))
        wait_replayed(cluster, "eu")
        with _paused_replay(cluster, "eu"):
            user_id = register(clean, "europe", email=email)
            wait_replayed(cluster, directory)  # the directory's replica has the row
            found = other.users.find_by_email(email)
            assert found is not None and found.id == user_id
            authenticated = other.users.authenticate(email, PASSWORD)
            assert authenticated is not None and authenticated.id == user_id
        assert other.users.find_by_email(f"nobody.{uuid.uuid4().hex[:8]}@example.org") is None
    finally:
        other.close()


@contextmanager
def _cut_on(cluster: LocalCluster, db: Database, shard: str, starts: str) -> Iterator[list[int]]:
    """Terminate the server connection of the first statement on ``shard`` that starts so."""
    engine = db.cluster.engines.primary(shard).engine
    cut: list[int] = []

    def cut_it(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith(starts) and not cut:
            pid = cursor.connection.get_backend_pid()
            killer = admin(cluster, cluster.state().primary_of(shard))
            try:
                with killer.cursor() as cur:
                    cur.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
            finally:
                killer.close()
            cut.append(pid)

    event.listen(engine, "before_cursor_execute", cut_it)
    try:
        yield cut
    finally:
        event.remove(engine, "before_cursor_execute", cut_it)


def test_a_commit_whose_position_cannot_be_read_still_pins_its_shard(
    clean: Database, cluster: LocalCluster
) -> None:
    # A participant's COMMIT PREPARED and its position are two round trips (the
    # server refuses COMMIT PREPARED in a multi-statement string): cut the second.
    before = wal_position(cluster, "na")
    with (
        _cut_on(cluster, clean, "na", "SELECT pg_wal_lsn_diff") as cut,
        clean.writer("europe") as uow,
    ):
        ours = insert_user_on(uow, "eu")
        theirs = insert_user_on(uow, "na")
    assert cut, "the position read was never cut"
    position = uow.committed_token.get("na")
    assert position is not None and position > before
    assert clean.token.get("na") is not None
    assert clean.users.get(theirs).id == theirs
    assert clean.users.get(ours).id == ours


def test_a_plain_commit_cut_in_its_round_trip_fails_and_writes_nothing(
    clean: Database, cluster: LocalCluster
) -> None:
    # COMMIT and the position go as one query string: cut before it reaches the
    # server, the transaction is rolled back with the connection, and the
    # caller is told (a lost commit is never retried: its outcome could be unknown).
    with (
        _cut_on(cluster, clean, "eu", "COMMIT; SELECT pg_wal_lsn_diff") as cut,
        pytest.raises(ShardUnavailable),
        clean.writer("eu") as uow,
    ):
        user_id = insert_user_on(uow, "eu")
    assert cut, "the commit was never cut"
    assert present_user_ids(cluster, "eu", [user_id]) == set()


def test_a_token_that_pins_a_shard_to_its_primary_never_uses_a_replica(clean: Database) -> None:
    with clean.reader("eu", token=CausalToken({"eu": PRIMARY_ONLY})) as uow:
        uow.execute(select(User.id).limit(1), shard="eu").all()
        assert uow.choices["eu"].node.role == "primary"
