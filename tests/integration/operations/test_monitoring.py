"""Monitoring on the session cluster: Prometheus metrics, `elearn top`, `elearn health --deep`."""

from __future__ import annotations

import json
import re
import secrets
import socket
import urllib.request

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from elearn_data.cli.app import app
from elearn_data.cluster.local import APP_USER, LocalCluster
from elearn_data.config import Settings
from elearn_data.database import Database
from elearn_data.errors import InvalidInput, NotFound
from elearn_data.monitoring.deep import deep_report
from elearn_data.monitoring.statements import top
from tests.integration.analytics.truth import superuser
from tests.integration.api.helpers import published_course, register
from tests.integration.reliability.drills import admin

pytestmark = pytest.mark.timeout(120)


def sample(exposition: str, name: str, **labels: str) -> float | None:
    """Return the value of one sample of the text exposition (None when absent)."""
    for line in exposition.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_count_api_calls_errors_and_multi_shard_units_of_work(clean: Database) -> None:
    before = clean.metrics()
    calls0 = sample(before, "elearn_api_call_seconds_count", method="users.register") or 0
    multi0 = sample(before, "elearn_units_of_work_total", role="writer", kind="multi_shard") or 0
    course, _ = published_course(clean, instructor_region="europe", max_enrollments=10)
    learner = register(clean, "asia")
    clean.enrollments.enroll(learner, course)  # two shards: learner's and the seat ledger's
    with pytest.raises(NotFound):
        clean.users.get(learner.__class__(int=learner.int ^ 1))
    after = clean.metrics()
    assert sample(after, "elearn_api_call_seconds_count", method="users.register") == calls0 + 2
    assert sample(after, "elearn_api_call_seconds_count", method="enrollments.enroll") >= 1
    assert sample(after, "elearn_api_errors_total", method="users.get", error="NotFound") >= 1
    assert sample(after, "elearn_units_of_work_total", role="writer", kind="multi_shard") > multi0
    assert sample(after, "elearn_pool_checkout_seconds_count", shard="apac", role="writer") >= 1


def test_metrics_read_nodes_lag_in_doubt_transactions_and_the_outbox(
    clean: Database, cluster: LocalCluster
) -> None:
    exposition = clean.metrics()
    for node in clean.cluster.engines.nodes():
        assert sample(exposition, "elearn_node_up", shard=node.shard, role=node.role) == 1
        if node.role == "replica":
            assert sample(exposition, "elearn_replica_lag_bytes", shard=node.shard) is not None
    for shard in clean.router.shards:
        assert sample(exposition, "elearn_twophase_in_doubt", shard=shard) == 0
        assert sample(exposition, "elearn_outbox_pending", shard=shard) is not None
        assert sample(exposition, "elearn_pool_size", shard=shard, role="primary") is not None

    # A transaction left prepared shows up until it is settled.
    gid = f"elearn:na:{secrets.token_hex(12)}"
    conn = admin(cluster, cluster.state().primary_of("na"))
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("PREPARE TRANSACTION %s", (gid,))
        assert sample(clean.metrics(), "elearn_twophase_in_doubt", shard="na") == 1
    finally:
        with conn.cursor() as cur:
            cur.execute("ROLLBACK PREPARED %s", (gid,))
        conn.close()
    assert sample(clean.metrics(), "elearn_twophase_in_doubt", shard="na") == 0


def _free_port() -> int:
    for port in range(23900, 24900):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port")


def test_metrics_are_served_on_loopback_only_below_the_ephemeral_range(clean: Database) -> None:
    metrics = clean.metrics_registry
    with pytest.raises(InvalidInput):
        metrics.serve(40000)
    with pytest.raises(InvalidInput):
        metrics.serve(_free_port(), host="0.0.0.0")
    port = _free_port()
    server, _thread = metrics.serve(port)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        assert b"elearn_node_up" in body
    finally:
        server.shutdown()


def test_top_merges_each_statement_over_nodes_and_shards(
    clean: Database, cluster: LocalCluster
) -> None:
    marker = f"top_marker_{secrets.token_hex(4)}"
    # pg_stat_statements identifies a statement by its shape, not by its aliases
    # or constants: a plain "SELECT 1 AS marker" shares its entry (and the first
    # text seen) with every other test's "SELECT 1". A seven-column VALUES list
    # is a shape no other statement has -- except this test's earlier runs on a
    # reused cluster, whose entry would keep the first run's marker as its text:
    # that entry is reset first.
    statement = text(
        f"SELECT 1 AS {marker} FROM (VALUES (1, 2, 3, 4, 5, 6, 7)) AS v(a, b, c, d, e, f, g)"
    )
    for shard in clean.router.shards:
        superuser(
            cluster,
            shard,
            "SELECT elearn_stats.pg_stat_statements_reset(0, 0, queryid)"
            " FROM elearn_stats.pg_stat_statements WHERE query LIKE %s",
            "%top\\_marker\\_%",
        )
    for shard in clean.router.shards:
        with clean.cluster.engines.primary(shard).engine.connect() as conn:
            for _ in range(3):
                conn.execute(statement)
    report = top(clean, limit=1000)
    mine = [s for s in report.most_frequent if marker in s.query]
    per_shard = {s.shard: s.calls for s in mine if s.shard != "all"}
    assert per_shard == {"na": 3, "eu": 3, "apac": 3}
    assert [s.calls for s in mine if s.shard == "all"] == [9]
    assert report.unreachable == []
    only_eu = top(clean, shard="europe", limit=5)
    assert {s.shard for s in only_eu.slowest} == {"eu"}
    with pytest.raises(InvalidInput):
        top(clean, limit=0)
    with pytest.raises(InvalidInput):
        top(clean, shard="atlantis")


def test_deep_health_finds_duplicate_and_unused_indexes_long_transactions_and_slots(
    clean: Database, cluster: LocalCluster, settings: Settings
) -> None:
    state = cluster.state()
    owner = admin(cluster, state.primary_of("eu"))
    held = clean.cluster.engines.primary("eu").engine.connect()
    try:
        with owner.cursor() as cur:
            cur.execute("CREATE INDEX elearn_test_duplicate ON users (created_at)")
        held.execute(text("SELECT 1"))  # an open transaction of the app role
        pid = held.execute(text("SELECT pg_backend_pid()")).scalar_one()
        report = deep_report(clean, long_transaction_s=0)
        eu = next(s for s in report.shards if s.shard == "eu")
        assert ["elearn_test_duplicate", "ix_users_created_at"] in eu.duplicate_indexes
        assert "elearn_test_duplicate" in eu.unused_indexes
        assert "users_pkey" not in eu.unused_indexes  # unique indexes enforce a rule
        assert any(tx.pid == pid and tx.user == APP_USER for tx in eu.long_transactions)
        assert {name for name, active, _held in eu.slots if active} == {"eu_1"}
        assert any(t.table == "users" for t in eu.tables)
        assert eu.errors == []
        assert json.dumps(report.to_dict())
    finally:
        held.rollback()
        held.close()
        with owner.cursor() as cur:
            cur.execute("DROP INDEX IF EXISTS elearn_test_duplicate")
        owner.close()


def test_cli_top_metrics_and_deep_health(clean: Database, cluster: LocalCluster) -> None:
    env = {"ELEARN_HOME": str(cluster.home)}
    runner = CliRunner()
    result = runner.invoke(app, ["top", "--json", "--limit", "3"], env=env)
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) == {"slowest", "most_frequent", "unreachable"}
    result = runner.invoke(app, ["metrics"], env=env)
    assert result.exit_code == 0, result.output
    assert "elearn_twophase_in_doubt" in result.stdout
    result = runner.invoke(app, ["health", "--deep", "--json"], env=env)
    assert result.exit_code in (0, 1), result.output
    assert {s["shard"] for s in json.loads(result.stdout)["deep"]["shards"]} == {"na", "eu", "apac"}
