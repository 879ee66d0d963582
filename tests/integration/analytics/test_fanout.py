"""Analytics fan out to every shard at once, each with its own budget, and name a failed shard."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from elearn_data.analytics import Analytics, FanOut, ShardQuery
from elearn_data.analytics.fanout import THREAD_PREFIX
from elearn_data.analytics.queries import PLATFORM_STATS
from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.errors import ShardUnavailable
from tests.integration.analytics.world import World


@contextmanager
def listening(db: Database, listener: Any) -> Iterator[None]:
    engines = [node.engine for node in db.cluster.engines.nodes()]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", listener)
    try:
        yield
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", listener)


def test_each_shard_runs_on_its_own_worker_thread_and_all_are_in_flight_together(
    world: World, db: Database
) -> None:
    # Each shard's statistics query waits at a barrier for the other two shards'
    # queries: shards queried one after another would never get past it.
    barrier = threading.Barrier(3, timeout=10)
    threads: set[str] = set()
    ports: set[int] = set()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "get_platform_stats" not in statement:
            return
        threads.add(threading.current_thread().name)
        ports.add(int(cursor.connection.info.port))
        barrier.wait()

    with listening(db, before):
        frame = Analytics(db).platform_stats()

    assert not barrier.broken
    # Three pool threads (never the caller's), each on its own shard's node.
    assert len(threads) == 3
    assert all(name.startswith(THREAD_PREFIX) for name in threads)
    assert threading.current_thread().name not in threads
    assert len(ports) == 3
    assert len(frame) == 4


def _replica_holds_lock(cluster: LocalCluster, shard: str, table: str) -> bool:
    conn = cluster.admin_connect(cluster.state().replicas_of(shard)[0], dbname="elearn")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock'"
                " AND relation = %s::regclass",
                (table,),
            )
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


def _waiting_queries(cluster: LocalCluster, shard: str) -> int:
    conn = cluster.admin_connect(cluster.state().replicas_of(shard)[0], dbname="elearn")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE state = 'active' AND query LIKE '%get_platform_stats%'"
                " AND pid <> pg_backend_pid()"
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_a_shard_that_does_not_answer_in_time_raises_shard_unavailable_naming_it(
    world: World, db: Database, cluster: LocalCluster
) -> None:
    # An ACCESS EXCLUSIVE lock on eu's primary is replayed on eu's replica, where
    # the statistics query then waits: eu is slow, na and apac are not.
    locker = cluster.admin_connect(cluster.state().primary_of("eu"), dbname="elearn")
    locker.autocommit = False
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE enrollments IN ACCESS EXCLUSIVE MODE")
            cur.execute("SELECT pg_switch_wal()")  # ship the lock record now
        deadline = time.monotonic() + 10
        while not _replica_holds_lock(cluster, "eu", "enrollments"):
            assert time.monotonic() < deadline, "the replica never replayed the lock"
            time.sleep(0.02)

        started = time.monotonic()
        with pytest.raises(ShardUnavailable) as info:
            Analytics(db, timeout_s=2.0).platform_stats()
        elapsed = time.monotonic() - started
        # The lock is still held, yet the server gave up the query by itself: the
        # budget was its statement_timeout too.
        deadline = time.monotonic() + 3
        while _waiting_queries(cluster, "eu"):
            assert time.monotonic() < deadline, "the query still waits on the replica"
            time.sleep(0.05)
    finally:
        locker.rollback()
        locker.close()

    assert info.value.shard == "eu"
    assert "'eu'" in str(info.value)
    assert 1.9 <= elapsed < 5.0
    # The lock is gone: the same call answers again.
    assert len(Analytics(db, timeout_s=10).platform_stats()) == 4


def test_the_shard_budget_is_also_the_servers_statement_timeout(
    world: World, db: Database, cluster: LocalCluster
) -> None:
    seen: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "set_config('statement_timeout'" in statement:
            seen.append((statement, parameters))

    # One statement per shard: the budget travels with it, in one round trip.
    with listening(db, before):
        Analytics(db, timeout_s=7).enrollments_by_region()
    assert len(seen) == 3
    assert all(s.startswith("SELECT set_config('statement_timeout'") for s, _ in seen)
    assert all("enrollments" in s for s, _ in seen)
    assert all(6000 < int(params["elearn_timeout_ms"]) <= 7000 for _, params in seen)

    # Several rounds: one snapshot per shard, begun together with the budget.
    seen.clear()
    with listening(db, before):
        Analytics(db, timeout_s=7).popular_courses(limit=3)
    assert len(seen) == 3
    assert all(s.startswith("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY") for s, _ in seen)
    assert all(6000 < int(params["ms"]) <= 7000 for _, params in seen)


def test_a_fan_out_without_snapshot_refuses_a_second_statement_to_a_shard(
    world: World, db: Database
) -> None:
    def twice(q: ShardQuery) -> None:
        q.one(PLATFORM_STATS.statement)
        q.one(PLATFORM_STATS.statement)

    with FanOut(db, timeout_s=10, snapshot=False) as fan, pytest.raises(RuntimeError, match="one"):
        fan.run(twice)
    # With a snapshot the same work is fine (both statements see one instant).
    with FanOut(db, timeout_s=10) as fan:
        assert set(fan.run(twice)) == {"na", "eu", "apac"}


def test_a_fan_out_used_outside_its_block_names_the_method_called(db: Database) -> None:
    fan = FanOut(db, timeout_s=10, snapshot=False)
    with pytest.raises(RuntimeError, match=r"FanOut\.each\(\) outside its `with` block"):
        fan.each(PLATFORM_STATS)
    with pytest.raises(RuntimeError, match=r"FanOut\.run\(\) outside its `with` block"):
        fan.run(lambda q: None)


def test_an_analytics_timeout_must_be_positive(db: Database) -> None:
    with pytest.raises(ValueError, match="positive"):
        Analytics(db, timeout_s=0)
