"""Prepared reads sent to every shard from one thread (sharding.multiplex).

``UnitOfWork.fetch_prepared_on_shards`` on an autocommit reader sends each
shard's statement on a replica's asynchronous connection and waits on every
socket at once. These tests pin what that path must keep: the rows the
ordinary (threaded) path returns, the statements visible to listeners, a
statement error raised as a domain error with every connection idle after
it, a lost connection replaced, and a prepared statement the server forgot.
The analytics fan-out's one-statement calls (``FanOut.each``) take the same
path with a deadline: a shard that does not answer by it is named, and its
connection never goes back to the pool busy.
"""

from __future__ import annotations

import os
import select
import signal
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import psycopg2.extensions
import pytest
from sqlalchemy import DateTime, String, Uuid, column, event, text
from sqlalchemy.pool import QueuePool

from elearn_data.analytics import fanout
from elearn_data.analytics.fanout import FanOut
from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings
from elearn_data.database import Database, connect
from elearn_data.errors import InvalidInput, ShardUnavailable
from elearn_data.regions import Region
from elearn_data.sharding import multiplex
from elearn_data.sharding.unit_of_work import PreparedRead
from tests.integration.factories import add_user
from tests.integration.observe import recording

NEWEST = PreparedRead(
    "elearn_test_newest_users",
    text(
        "SELECT id, region, created_at FROM users"
        " ORDER BY created_at DESC, id LIMIT CAST(:limit AS int)"
    ).columns(column("id", Uuid), column("region", String), column("created_at", DateTime)),
    ("limit",),
)
# Fails on every shard without a learner of Europe (division by zero): na, apac.
EUROPEANS_ONLY = PreparedRead(
    "elearn_test_europeans_only",
    text("SELECT CAST(:one AS int) / (SELECT count(*) FROM users WHERE region = 'europe')").columns(
        column("quotient", String)
    ),
    ("one",),
)


# Answers after a fifth of a second: still running when the caller starts waiting.
SLOW = PreparedRead(
    "elearn_test_slow",
    text("SELECT CAST(:one AS int) FROM pg_sleep(0.2)").columns(column("one", String)),
    ("one",),
)

# A timed read (FanOut.each) that sleeps: when the server started it (now(): the
# start of its query string) and when it ended.
OVERLAP = PreparedRead(
    "elearn_test_overlap",
    text(
        "SELECT now() AS started, clock_timestamp() AS ended FROM pg_sleep(CAST(:pause AS float8))"
    ).columns(column("started", DateTime), column("ended", DateTime)),
    ("pause",),
    timed=True,
)


@pytest.fixture(scope="module")
def steady(migrated: Settings) -> Iterator[Database]:
    """A Database whose replica lag checks are never due in a test (one an hour).

    A reader multiplexes only on replicas it can take without a query: with the
    session's one-second interval, a slow machine would send some calls down
    the ordinary path and the assertions below would not know which ran.
    """
    replica = migrated.replica.model_copy(update={"check_interval_s": 3600.0})
    database = connect(migrated.model_copy(update={"replica": replica}))
    yield database
    database.close()


@pytest.fixture
def fresh(clean: Database, steady: Database) -> Database:
    """``steady`` over empty tables."""
    return steady


def _pools(db: Database) -> Iterator[QueuePool]:
    for node in db.cluster.engines.nodes():
        if node.multiplexed is not None:
            yield node.multiplexed


@contextmanager
def _checkouts(db: Database) -> Iterator[Counter[str]]:
    """Count the checkouts of each shard's multiplexed pools while the block runs."""
    counted: Counter[str] = Counter()
    listeners = []
    for shard in db.router.shards:
        for node in db.cluster.engines.replicas(shard):
            assert node.multiplexed is not None

            def checkout(*_: Any, shard: str = shard) -> None:
                counted[shard] += 1

            event.listen(node.multiplexed, "checkout", checkout)
            listeners.append((node.multiplexed, checkout))
    try:
        yield counted
    finally:
        for pool, listener in listeners:
            event.remove(pool, "checkout", listener)


def _assert_every_connection_idle(db: Database) -> None:
    """No multiplexed connection in a pool still runs a statement."""
    for pool in _pools(db):
        taken = [pool.connect() for _ in range(pool.checkedin())]
        try:
            assert not any(c.dbapi_connection.isexecuting() for c in taken)  # type: ignore[union-attr]
        finally:
            for c in taken:
                c.close()


def _everyone(db: Database) -> list[uuid.UUID]:
    """A learner on every shard; then one read, which waits for the replicas to replay them.

    The reader holds the writes' causal token: until a replica is known to
    have replayed it, the ordinary path serves (it waits for the replica).
    """
    users = [add_user(db, region) for region in (Region.NORTH_AMERICA, Region.EUROPE, Region.ASIA)]
    with db.reader() as uow:
        uow.fetch_prepared_on_shards(NEWEST, (1,))
    return users


def _threaded(db: Database, query: PreparedRead, args: tuple[Any, ...]) -> dict[str, Any]:
    """The same read on the ordinary path: each shard in a snapshot, through SQLAlchemy."""
    with db.reader(snapshot=True) as uow:
        return uow.fetch_prepared_on_shards(query, args)


def test_every_shard_answers_from_one_thread_what_the_threaded_path_returns(
    fresh: Database,
) -> None:
    _everyone(fresh)
    with _checkouts(fresh) as counted, fresh.reader() as uow:
        found = uow.fetch_prepared_on_shards(NEWEST, (5,))
        # The replicas' asynchronous connections served it, and are back in their pools.
        assert all(uow.choices[s].node.role == "replica" for s in found)
    assert counted == dict.fromkeys(fresh.router.shards, 1)
    assert list(found) == list(fresh.router.shards)
    assert found == _threaded(fresh, NEWEST, (5,))
    row = found["eu"][0]
    assert isinstance(row[0], uuid.UUID) and row[1] == "europe" and row[2].tzinfo is not None
    assert all(pool.checkedout() == 0 for pool in _pools(fresh))


def test_a_shard_the_reader_already_reads_on_answers_on_its_connection_beside_the_others(
    fresh: Database,
) -> None:
    _everyone(fresh)
    expected = _threaded(fresh, NEWEST, (5,))
    with fresh.reader() as uow:
        first = uow.fetch_prepared_rows(NEWEST, (5,), shard="eu")
        with _checkouts(fresh) as counted:
            found = uow.fetch_prepared_on_shards(NEWEST, (5,))
    # One node per shard and unit of work: eu again on its connection, the others multiplexed.
    assert counted == {s: 1 for s in fresh.router.shards if s != "eu"}
    assert found == expected and found["eu"] == first


def test_listeners_see_every_statement_and_the_threads_serve_them(
    fresh: Database, cluster: LocalCluster
) -> None:
    _everyone(fresh)
    expected = _threaded(fresh, NEWEST, (3,))
    with recording(fresh, cluster) as seen, fresh.reader() as uow:
        assert uow.fetch_prepared_on_shards(NEWEST, (3,)) == expected
    shards = {shard for shard, _, sql in seen.seen if "FROM users" in sql}
    assert shards == set(fresh.router.shards)
    assert not any(sql.startswith(("PREPARE", "EXECUTE")) for _, _, sql in seen.seen)


def test_a_statement_error_is_raised_for_the_first_shard_and_every_connection_is_idle(
    fresh: Database,
) -> None:
    _everyone(fresh)
    with fresh.reader() as uow, pytest.raises(InvalidInput):  # division by zero: class 22
        uow.fetch_prepared_on_shards(EUROPEANS_ONLY, (1,))
    _assert_every_connection_idle(fresh)
    with fresh.reader() as uow:
        assert uow.fetch_prepared_on_shards(EUROPEANS_ONLY, (1,), shards=["eu"])["eu"]
        assert set(uow.fetch_prepared_on_shards(NEWEST, (1,))) == set(fresh.router.shards)


def _terminate_multiplexed(cluster: LocalCluster, shard: str, db: Database) -> int:
    """End every backend of the shard's replicas' multiplexed pools; return how many."""
    pids: set[int] = set()
    for node in db.cluster.engines.replicas(shard):
        assert node.multiplexed is not None
        taken = [node.multiplexed.connect() for _ in range(node.multiplexed.checkedin())]
        pids.update(c.dbapi_connection.info.backend_pid for c in taken)  # type: ignore[union-attr]
        for c in taken:
            c.close()
    ended = 0
    for replica in cluster.state().replicas_of(shard):
        conn = cluster.admin_connect(replica, dbname="elearn")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE pid = ANY(%s)",
                    (list(pids),),
                )
                ended += cur.fetchone()[0]
                deadline = time.monotonic() + 10
                while True:
                    cur.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),)
                    )
                    if cur.fetchone()[0] == 0:
                        break
                    assert time.monotonic() < deadline, "the backends never exited"
                    time.sleep(0.02)
        finally:
            conn.close()
    return ended


def test_a_lost_connection_is_invalidated_with_its_pool_and_the_read_answers(
    fresh: Database, cluster: LocalCluster
) -> None:
    _everyone(fresh)
    expected = _threaded(fresh, NEWEST, (4,))
    with fresh.reader() as uow:
        assert uow.fetch_prepared_on_shards(NEWEST, (4,)) == expected
    assert _terminate_multiplexed(cluster, "eu", fresh) >= 1
    pools = [n.multiplexed for n in fresh.cluster.engines.replicas("eu")]
    before = [p._invalidate_time for p in pools if p is not None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # invalidating a connection twice would warn
        with fresh.reader() as uow:
            assert uow.fetch_prepared_on_shards(NEWEST, (4,)) == expected
    after = [p._invalidate_time for p in pools if p is not None]
    assert any(a > b for a, b in zip(after, before, strict=True))
    # New connections replace the lost ones on the next call.
    with fresh.reader() as uow:
        assert uow.fetch_prepared_on_shards(NEWEST, (4,)) == expected
        assert uow.choices["eu"].node.multiplexed.checkedin() >= 1  # type: ignore[union-attr]


def test_a_statement_the_server_forgot_is_prepared_again(fresh: Database) -> None:
    _everyone(fresh)
    with fresh.reader() as uow:
        expected = uow.fetch_prepared_on_shards(NEWEST, (2,))
    for pool in _pools(fresh):
        taken = [pool.connect() for _ in range(pool.checkedin())]
        for c in taken:
            conn: Any = c.dbapi_connection
            cursor = conn.cursor()  # kept: psycopg2 needs it until the poll is done
            cursor.execute("DEALLOCATE ALL")
            while conn.poll() != psycopg2.extensions.POLL_OK:
                select.select([conn], [], [], 5)
            assert NEWEST.name in c.info[multiplex.PREPARED_KEY]  # we remember; the server forgot
            c.close()
    with fresh.reader() as uow:
        assert uow.fetch_prepared_on_shards(NEWEST, (2,)) == expected


def test_an_interrupted_wait_never_returns_a_busy_connection_to_its_pool(
    fresh: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _everyone(fresh)
    with fresh.reader() as uow:
        expected = uow.fetch_prepared_on_shards(NEWEST, (2,))

    def interrupted(*args: Any) -> Any:
        raise KeyboardInterrupt

    # Only the multiplexed wait is interrupted (the module's own name for select),
    # and a statement that sleeps is still running when the wait starts.
    monkeypatch.setattr(multiplex, "select", SimpleNamespace(select=interrupted))
    with fresh.reader() as uow, pytest.raises(KeyboardInterrupt):
        uow.fetch_prepared_on_shards(SLOW, (1,))
    monkeypatch.undo()
    _assert_every_connection_idle(fresh)
    with fresh.reader() as uow:
        assert uow.fetch_prepared_on_shards(NEWEST, (2,)) == expected


def _each(db: Database, query: PreparedRead, *args: Any, timeout_s: float = 30.0) -> Any:
    with FanOut(db, timeout_s=timeout_s, snapshot=False) as fan:
        return fan.each(query, *args), fan.nodes


def _no_threads() -> None:
    raise AssertionError("a pool thread was asked for")


def test_a_fan_out_sends_every_shard_its_statement_from_the_calling_thread_at_once(
    fresh: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _everyone(fresh)
    monkeypatch.setattr(fanout, "_pool", _no_threads)
    with _checkouts(fresh) as counted:
        found, nodes = _each(fresh, OVERLAP, 0.3)
    assert counted == dict.fromkeys(fresh.router.shards, 1)
    assert list(found) == list(fresh.router.shards)
    assert all(label.startswith(f"{shard}/replica") for shard, label in nodes.items())
    # Every shard started its statement before any of them ended: all in flight at once.
    runs = [rows[0] for rows in found.values()]  # (started, ended) of each shard
    assert max(started for started, _ in runs) < min(ended for _, ended in runs)
    assert all(pool.checkedout() == 0 for pool in _pools(fresh))


def _sleeping(cluster: LocalCluster) -> int:
    """How many statements of OVERLAP the replicas are still running."""
    running = 0
    for shard in cluster.state().shards:
        for replica in cluster.state().replicas_of(shard):
            conn = cluster.admin_connect(replica, dbname="elearn")
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                        " AND query LIKE '%elearn_test_overlap%' AND pid <> pg_backend_pid()"
                    )
                    running += int(cur.fetchone()[0])
            finally:
                conn.close()
    return running


def test_a_timed_read_carries_its_budget_to_the_server_on_every_path(
    fresh: Database, cluster: LocalCluster
) -> None:
    # The server ends a statement that outlives the budget, whichever path sent it.
    _everyone(fresh)
    with pytest.raises(ShardUnavailable):  # the server's timeout or the client's deadline
        _each(fresh, OVERLAP, 5.0, timeout_s=0.5)
    _assert_every_connection_idle(fresh)
    # The statements sleep 5 s, yet the servers stopped them by themselves.
    deadline = time.monotonic() + 3
    while _sleeping(cluster):
        assert time.monotonic() < deadline, "a replica still runs the statement"
        time.sleep(0.05)
    with fresh.reader() as uow:
        assert uow.fetch_prepared_rows(OVERLAP, (60_000, 0), shard="eu")
        with pytest.raises(ShardUnavailable, match="statement timeout"):
            uow.fetch_prepared_rows(OVERLAP, (200, 5.0), shard="na")
    with fresh.writer("eu") as writer, pytest.raises(RuntimeError, match="autocommit readers"):
        writer.fetch_prepared_rows(OVERLAP, (60_000, 0), shard="eu")


def _client_backends(cluster: LocalCluster, shard: str) -> list[int]:
    """The pids of the application's server connections on the shard's replica."""
    (replica,) = cluster.state().replicas_of(shard)
    conn = cluster.admin_connect(replica, dbname="elearn")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'"
                " AND usename <> current_user"
            )
            return [int(row[0]) for row in cur.fetchall()]
    finally:
        conn.close()


def test_a_fan_out_names_a_shard_that_does_not_answer_by_its_deadline(
    fresh: Database, cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server that cannot answer at all (its backends stopped: not even its own
    # statement timeout fires): the client's deadline ends the call.
    _everyone(fresh)
    expected = _each(fresh, OVERLAP, 0)[0].keys()
    stopped = _client_backends(cluster, "eu")
    assert stopped
    monkeypatch.setattr(fanout, "_pool", _no_threads)  # the multiplexed wait's own deadline
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(ShardUnavailable) as info:
            _each(fresh, OVERLAP, 0, timeout_s=1.0)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        monkeypatch.undo()
    assert info.value.shard == "eu"
    assert "no answer within 1 s (analytics_timeout_s)" in str(info.value)
    # Its connection was discarded, not returned with a statement running.
    _assert_every_connection_idle(fresh)
    assert _each(fresh, OVERLAP, 0)[0].keys() == expected


def test_a_fan_out_reads_a_shard_whose_connection_was_lost_on_a_pool_thread(
    fresh: Database, cluster: LocalCluster
) -> None:
    _everyone(fresh)
    _each(fresh, OVERLAP, 0)
    assert _terminate_multiplexed(cluster, "eu", fresh) >= 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # invalidating a connection twice would warn
        found, nodes = _each(fresh, OVERLAP, 0)
    assert list(found) == list(fresh.router.shards)
    assert nodes["eu"].startswith("eu/replica")
