"""The embedded cluster and the engine map, against real servers."""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from elearn_data.cluster.local import LocalCluster, find_free_base_port
from elearn_data.config import Settings, url_hosts
from elearn_data.sharding import probes
from elearn_data.sharding.engines import EngineMap
from elearn_data.sharding.probes import replay_lag_bytes
from tests.support import make_home


@pytest.fixture(scope="module")
def engines(settings: Settings) -> Iterator[EngineMap]:
    engine_map = EngineMap(settings)
    yield engine_map
    engine_map.dispose()


def test_every_node_is_reachable_in_its_role(engines: EngineMap) -> None:
    for shard in engines.shards:
        primary = engines.probe(engines.primary(shard))
        assert primary.reachable, primary.error
        assert primary.in_recovery is False
        replicas = engines.replicas(shard)
        assert len(replicas) == 1
        for replica in replicas:
            probe = engines.probe(replica)
            assert probe.reachable, probe.error
            assert probe.in_recovery is True


def test_three_primaries_each_stream_to_a_replica(cluster: LocalCluster) -> None:
    nodes = cluster.status()
    primaries = [n for n in nodes if n.role == "primary"]
    replicas = [n for n in nodes if n.role == "replica"]
    assert sorted(n.shard for n in primaries) == ["apac", "eu", "na"]
    assert all(n.up and n.in_recovery is False for n in primaries)
    assert sorted(n.shard for n in replicas) == ["apac", "eu", "na"]
    assert all(
        n.up and n.in_recovery and n.sync_state in {"async", "quorum", "sync"} for n in replicas
    )
    assert len({n.port for n in nodes}) == len(nodes)
    assert all(n.host == "127.0.0.1" for n in nodes)


def _wait_replayed(cur: object, lsn: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        cur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))  # type: ignore[attr-defined]
        if cur.fetchone()[0]:  # type: ignore[attr-defined]
            return
        assert time.monotonic() < deadline, "replica did not replay the write"
        time.sleep(0.01)


def test_each_replica_replays_a_write_made_on_its_primary(cluster: LocalCluster) -> None:
    state = cluster.state()
    for shard in state.shards:
        primary = cluster.admin_connect(state.primary_of(shard))
        replica = cluster.admin_connect(state.replicas_of(shard)[0])
        try:
            with primary.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS replication_probe (shard text, n int)")
                cur.execute("INSERT INTO replication_probe VALUES (%s, 1) RETURNING 1", (shard,))
                cur.execute("SELECT pg_current_wal_lsn()::text")
                lsn = cur.fetchone()[0]
            with replica.cursor() as cur:
                _wait_replayed(cur, lsn)
                cur.execute("SELECT count(*) FROM replication_probe WHERE shard = %s", (shard,))
                assert cur.fetchone()[0] >= 1
        finally:
            with primary.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS replication_probe")
            primary.close()
            replica.close()


def test_a_write_sent_to_a_replica_is_rejected(engines: EngineMap) -> None:
    replica = engines.replicas("eu")[0]
    with replica.engine.connect() as conn, pytest.raises(DBAPIError) as info:
        conn.execute(text("CREATE TEMP TABLE should_fail (x int)"))
    assert isinstance(info.value.orig, psycopg2.errors.ReadOnlySqlTransaction)


def test_application_role_cannot_run_ddl(engines: EngineMap) -> None:
    with engines.primary("na").engine.connect() as conn, pytest.raises(DBAPIError) as info:
        conn.execute(text("CREATE TABLE not_allowed (x int)"))
    assert isinstance(info.value.orig, psycopg2.errors.InsufficientPrivilege)


def test_primary_url_reaches_the_primary_through_libpq(engines: EngineMap) -> None:
    for shard in engines.shards:
        with engines.primary(shard).engine.connect() as conn:
            in_recovery, user = conn.execute(text("SELECT pg_is_in_recovery(), current_user")).one()
        assert in_recovery is False
        assert user == "elearn_app"


def test_up_is_idempotent(cluster: LocalCluster) -> None:
    before = json.loads(cluster.state_path.read_text())
    settings_before = cluster.settings_path.read_text()
    nodes = cluster.up(replicas=1)
    assert json.loads(cluster.state_path.read_text()) == before
    assert cluster.settings_path.read_text() == settings_before
    assert all(n.up for n in nodes)
    assert len(nodes) == 6


def test_pool_statistics_cover_every_node(engines: EngineMap) -> None:
    with engines.primary("apac").engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        stats = {(s.shard, s.role, s.pool): s for s in engines.pool_stats()}
        assert stats[("apac", "primary", "engine")].checked_out == 1
    # Every node's engine, and each replica's multiplexed pool (sharding.multiplex).
    assert len(stats) == 6 + 3
    assert {k for k in stats if k[2] == "multiplexed"} == {
        (shard, "replica", "multiplexed") for shard in engines.shards
    }
    assert all(s.size == engines.settings.pool.size for s in stats.values())


def test_down_then_up_keeps_data_and_a_stopped_node_restarts() -> None:
    home = make_home("elearn-updown-")
    local = LocalCluster(home, fsync_initdb=False)
    try:
        local.up(replicas=1, base_port=find_free_base_port())
        state = local.state()
        primary = state.primary_of("na")
        conn = local.admin_connect(primary, dbname="elearn")
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE kept (v text)")
            cur.execute("INSERT INTO kept VALUES ('still here')")
        conn.close()

        local.down()
        assert not any(n.up for n in local.status())

        local.up()
        conn = local.admin_connect(primary, dbname="elearn")
        with conn.cursor() as cur:
            cur.execute("SELECT v FROM kept")
            assert cur.fetchall() == [("still here",)]
        conn.close()

        local.stop("eu", "replica")
        down = {n.name: n.up for n in local.status()}
        assert down["eu-1"] is False and down["eu-0"] is True
        local.up()
        assert all(n.up for n in local.status())
    finally:
        local.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)


_DATABASE_RIGHTS = (
    "SELECT pg_get_userbyid(d.datdba), d.datacl::text[] FROM pg_database d WHERE d.datname = %s"
)
_SCHEMA_RIGHTS = (
    "SELECT pg_get_userbyid(n.nspowner), n.nspacl::text[] FROM pg_namespace n"
    " WHERE n.nspname = 'public'"
)


def _rights(cluster: LocalCluster, dbname: str) -> tuple[Any, Any]:
    node = cluster.state().primary_of("eu")
    conn = cluster.admin_connect(node)
    try:
        with conn.cursor() as cur:
            cur.execute(_DATABASE_RIGHTS, (dbname,))
            database = cur.fetchone()
    finally:
        conn.close()
    conn = cluster.admin_connect(node, dbname=dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(_SCHEMA_RIGHTS)
            schema = cur.fetchone()
    finally:
        conn.close()
    return database, schema


def test_a_prepared_database_has_the_rights_of_the_platform_database(
    cluster: LocalCluster,
) -> None:
    node = cluster.state().primary_of("eu")
    fresh, existing = f"elearn_prep_{secrets.token_hex(4)}", f"elearn_prep_{secrets.token_hex(4)}"
    conn = cluster.admin_connect(node)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:  # as a test fixture makes it: owned by the superuser
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(existing)))
        cluster.prepare_database(node, fresh)
        cluster.prepare_database(node, existing)
        platform = _rights(cluster, "elearn")
        assert platform[0][0] == "elearn_owner"
        for name in (fresh, existing, fresh):
            database, schema = _rights(cluster, name)
            assert database == platform[0]
            # The migrations add the analyst's USAGE to a migrated schema; the rest is alike.
            assert schema[0] == platform[1][0] == "elearn_owner"
            assert set(schema[1]) == {"elearn_owner=UC/elearn_owner", "elearn_app=U/elearn_owner"}
            assert set(schema[1]) <= set(platform[1][1])
            cluster.prepare_database(node, fresh)  # idempotent
    finally:
        with conn.cursor() as cur:
            for name in (fresh, existing):
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        conn.close()


def test_the_cluster_and_the_engine_map_probe_every_node_alike(
    cluster: LocalCluster, engines: EngineMap
) -> None:
    """One probe, two callers: the superuser's (cluster) and the application role's (engines)."""
    state = cluster.state()
    for shard in engines.shards:
        primary = state.primary_of(shard)
        for node in [engines.primary(shard), *engines.replicas(shard)]:
            port = url_hosts(node.url)[0][1]
            spec = next(n for n in state.nodes_of(shard) if n.port == port)
            before, seen, after = cluster.probe(spec), engines.probe(node), cluster.probe(spec)
            assert before.reachable and seen.reachable and after.reachable, seen.error
            assert before.in_recovery is seen.in_recovery is after.in_recovery
            assert seen.in_recovery is (spec is not primary)
            assert seen.writable is (spec is primary)
            assert before.server_port == seen.server_port == after.server_port == port
            # WAL positions only move forward (a primary's current, a replica's replayed).
            assert before.lsn is not None and seen.lsn is not None and after.lsn is not None
            assert before.lsn <= seen.lsn <= after.lsn
            assert not seen.replay_paused_with_wal_waiting
    statuses = {(n.shard, n.port): n for n in cluster.status()}
    for shard in state.shards:
        head = cluster.probe(state.primary_of(shard))
        assert replay_lag_bytes(head, head) == 0
        for replica in state.replicas_of(shard):
            lag = replay_lag_bytes(head, cluster.probe(replica))
            assert lag is not None and lag >= 0
            assert statuses[(shard, replica.port)].replay_lag_bytes is not None
        assert statuses[(shard, state.primary_of(shard).port)].replay_lag_bytes == 0


def test_a_probe_of_a_node_that_does_not_answer_reports_it_down() -> None:
    port = find_free_base_port()
    probe = probes.probe(
        lambda: psycopg2.connect(host="127.0.0.1", port=port, dbname="elearn", connect_timeout=1)
    )
    assert not probe.reachable and not probe.writable
    assert probe.error and "\n" not in probe.error
    assert probe.in_recovery is None and probe.lsn is None
    up = probes.NodeProbe(reachable=True, in_recovery=False, lsn=100)
    assert replay_lag_bytes(up, probe) is None
    assert replay_lag_bytes(probe, up) is None
    # A replica that replayed past the primary's earlier probe is not negative.
    assert replay_lag_bytes(up, probes.NodeProbe(reachable=True, in_recovery=True, lsn=150)) == 0
    # Lag is measured against a primary only.
    standby = probes.NodeProbe(reachable=True, in_recovery=True, lsn=200)
    assert replay_lag_bytes(standby, up) is None
