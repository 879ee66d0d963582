"""Fault drills on a cluster of their own: stopped nodes and schema drift.

The session cluster is left alone: this module builds a small cluster (3
shards, 1 replica each), stops and restarts its nodes, downgrades one shard,
and always brings it back before the next test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from elearn_data import migrations
from elearn_data.analytics import Analytics
from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings
from elearn_data.database import Database, connect
from elearn_data.errors import ShardUnavailable
from elearn_data.health import HealthReport, health_report
from tests.integration.analytics.cli import cli_app
from tests.integration.api.helpers import published_course, register
from tests.support import drill_settings


@dataclass
class Drill:
    cluster: LocalCluster
    settings: Settings
    db: Database


@pytest.fixture(scope="module")
def drill(drill_cluster: LocalCluster) -> Iterator[Drill]:
    settings = drill_settings(drill_cluster.home)
    db = connect(settings)
    # A little data on every shard, so that statistics are not all zero.
    course, _ = published_course(db, instructor_region="europe", lessons=1)
    for region in ("north_america", "asia", "africa"):
        db.enrollments.enroll(register(db, region), course)
    try:
        yield Drill(drill_cluster, settings, db)
    finally:
        db.close()


def restored(drill: Drill) -> HealthReport:
    """Bring every node back and wait until the report is healthy again."""
    drill.cluster.up()
    deadline = time.monotonic() + 30
    while True:
        report = health_report(drill.db, timeout_s=5)
        if report.ok or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def open_snapshots(drill: Drill, shards: tuple[str, ...], wait_s: float = 3) -> list[str]:
    """Return the application's sessions left idle in a transaction on the shards' nodes."""
    deadline = time.monotonic() + wait_s
    while True:
        found: list[str] = []
        state = drill.cluster.state()
        for shard in shards:
            for node in state.nodes_of(shard):
                conn = drill.cluster.admin_connect(node, dbname="elearn")
                try:
                    with conn.cursor() as cur:
                        cur.execute(
                            "SELECT state FROM pg_stat_activity"
                            " WHERE usename = 'elearn_app' AND state LIKE 'idle in transaction%'"
                        )
                        found += [f"{node.name}: {row[0]}" for row in cur.fetchall()]
                finally:
                    conn.close()
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_stopped_replica_is_reported_down_and_the_report_stays_complete(
    drill: Drill,
) -> None:
    try:
        drill.cluster.stop("eu", "replica")
        report = health_report(drill.db, timeout_s=5)

        assert report.ok is False
        assert len(report.nodes) == 6
        down = [n for n in report.nodes if not n.reachable]
        assert [(n.shard, n.role) for n in down] == [("eu", "replica")]
        assert down[0].error and down[0].server is None
        assert down[0].replay_lag_bytes is None
        assert any("eu/replica" in p and "down" in p for p in report.problems)
        # Everything else is still there: the schema (from eu's primary), the
        # content store, every pool, and statistics (eu's primary serves them).
        assert {s.shard: s.state for s in report.schema} == {
            "apac": "ok",
            "eu": "ok",
            "na": "ok",
        }
        assert report.mongo["backend"] == "mongomock" and report.mongo["reachable"]
        # Every node's engine pool, and each replica's multiplexed pool.
        assert sorted(p["pool"] for p in report.pools) == ["engine"] * 6 + ["multiplexed"] * 3
        assert report.stats is not None and report.stats["enrollments"] == 3
        json.dumps(report.to_dict())

        # `elearn health` shows the same and exits non-zero; --json still parses.
        env = {"ELEARN_HOME": str(drill.cluster.home)}
        shown = CliRunner().invoke(cli_app(), ["health"], env=env, terminal_width=200)
        assert shown.exit_code == 1, shown.output
        assert "DOWN" in shown.output and "UNHEALTHY" in shown.output
        as_json = CliRunner().invoke(cli_app(), ["health", "--json"], env=env)
        assert as_json.exit_code == 1
        assert json.loads(as_json.stdout)["ok"] is False
    finally:
        after = restored(drill)
    assert after.ok, after.problems


def test_a_shard_with_every_node_down_fails_analytics_naming_it_and_health_reports_it(
    drill: Drill,
) -> None:
    try:
        drill.cluster.stop("na", "replica")
        drill.cluster.stop("na", "primary")

        started = time.monotonic()
        with pytest.raises(ShardUnavailable) as info:
            Analytics(drill.db, timeout_s=5).platform_stats()
        assert info.value.shard == "na"
        assert "'na'" in str(info.value)
        assert time.monotonic() - started < 5
        # The shards that were still answering closed their snapshots all the same.
        assert open_snapshots(drill, ("eu", "apac")) == []

        report = health_report(drill.db, timeout_s=5)
        assert report.ok is False
        assert len(report.nodes) == 6
        assert {(n.shard, n.role) for n in report.nodes if not n.reachable} == {
            ("na", "primary"),
            ("na", "replica"),
        }
        schema = {s.shard: s for s in report.schema}
        assert schema["na"].state == "unreachable" and schema["na"].error
        assert schema["eu"].state == "ok" and schema["apac"].state == "ok"
        assert report.stats is None and report.stats_by_shard is None
        assert report.stats_error is not None and "'na'" in report.stats_error
        assert json.loads(json.dumps(report.to_dict()))["stats"] is None
    finally:
        after = restored(drill)
    assert after.ok, after.problems
    # Pooled connections to the restarted nodes are stale; analytics recover from that.
    frame = Analytics(drill.db, timeout_s=10).platform_stats()
    assert int(frame.set_index("shard").loc["all", "enrollments"]) == 3


def test_a_shard_behind_the_head_revision_is_reported_as_drift(drill: Drill) -> None:
    head = migrations.head_revision()
    try:
        migrations.downgrade(drill.settings, "0002", shard="apac")
        report = health_report(drill.db, timeout_s=5)

        assert report.ok is False
        schema = {s.shard: s for s in report.schema}
        assert (schema["apac"].revision, schema["apac"].head, schema["apac"].state) == (
            "0002",
            head,
            "behind",
        )
        assert schema["eu"].state == "ok" and schema["na"].state == "ok"
        primary = next(n for n in report.nodes if n.shard == "apac" and n.role == "primary")
        assert primary.schema_revision == "0002"
        assert all(n.reachable for n in report.nodes)
        assert any("apac" in p and "behind" in p for p in report.problems)
    finally:
        migrations.upgrade(drill.settings, shard="apac")
    assert health_report(drill.db, timeout_s=5).ok


def test_analyst_sql_reads_a_primary_for_a_down_replica_and_names_a_dead_shard(
    drill: Drill,
) -> None:
    db = drill.db
    count = "SELECT shard, count(*) AS n FROM enrollments GROUP BY shard ORDER BY shard"
    before = db.analytics.sql(count).to_dict("records")
    assert sum(int(r["n"]) for r in before) == 3
    try:
        drill.cluster.stop("eu", "replica")
        assert db.analytics.sql(count).to_dict("records") == before

        drill.cluster.stop("na", "replica")
        drill.cluster.stop("na", "primary")
        started = time.monotonic()
        with pytest.raises(ShardUnavailable) as info:
            db.analytics.sql(count)
        assert info.value.shard == "na" and "'na'" in str(info.value)
        assert time.monotonic() - started < 15
        # A new engine, built while the shard is down, says the same.
        fresh = Analytics(db, timeout_s=5)
        try:
            with pytest.raises(ShardUnavailable) as again:
                fresh.sql(count)
            assert again.value.shard == "na"
        finally:
            fresh.close()
    finally:
        after = restored(drill)
    assert after.ok, after.problems
    # The attachments to the restarted servers were broken; the engine reattaches.
    assert db.analytics.sql(count).to_dict("records") == before
