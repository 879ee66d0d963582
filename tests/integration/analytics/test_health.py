"""The health report of a healthy platform, and the `health` / `stats` commands."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings
from elearn_data.database import Database
from elearn_data.health import health_report
from elearn_data.migrations import head_revision
from tests.integration.analytics import truth
from tests.integration.analytics.cli import cli_app
from tests.integration.analytics.world import World


def test_a_healthy_platform_reports_every_node_in_its_role_with_lag_and_revision(
    world: World, db: Database, cluster: LocalCluster
) -> None:
    report = health_report(db)

    assert report.ok, report.problems
    assert report.problems == ()
    ports = {n.port: (n.shard, n.role) for n in cluster.status()}
    assert len(report.nodes) == 6
    for node in report.nodes:
        # A primary's address lists every host of its shard (libpq failover); the
        # server that answered is the primary.
        assert node.server is not None and node.server in node.address
        assert ports[int(node.server.rsplit(":", 1)[1])] == (node.shard, node.role)
        assert node.reachable and node.error is None
        assert node.in_recovery is (node.role == "replica")
        assert node.schema_revision == head_revision()
        if node.role == "replica":
            assert node.replay_lag_bytes is not None and node.replay_lag_bytes >= 0
            assert node.replay_lag_seconds is not None and node.replay_lag_seconds >= 0
        else:
            assert node.replay_lag_bytes is None
    assert [(s.shard, s.state, s.revision) for s in report.schema] == [
        (shard, "ok", head_revision()) for shard in ("apac", "eu", "na")
    ]


def test_the_health_report_shows_mongo_status_pools_and_merged_statistics(
    world: World, db: Database, cluster: LocalCluster, settings: Settings
) -> None:
    report = health_report(db)

    assert report.mongo["reachable"] is True
    assert report.mongo["backend"] == ("mongodb" if settings.mongo_uri else "mongomock")
    assert {(p["shard"], p["role"]) for p in report.pools} == {
        (shard, role) for shard in ("na", "eu", "apac") for role in ("primary", "replica")
    }
    assert all(p["size"] == settings.pool.size for p in report.pools)
    expected = truth.platform(truth.read_raw(cluster))
    assert report.stats == expected["all"]
    assert report.stats_by_shard == {s: expected[s] for s in ("apac", "eu", "na")}
    assert report.stats_error is None


def test_the_health_report_serialises_to_json_without_credentials(
    world: World, db: Database, settings: Settings
) -> None:
    report = health_report(db)
    payload = report.to_dict()
    text = json.dumps(payload)  # JSON-ready: no default= needed

    assert json.loads(text)["ok"] is True
    assert report.stats is not None
    assert payload["stats"]["revenue"] == str(report.stats["revenue"])  # money stays exact
    for shard in settings.shard_names:
        secret = settings.shard_password(shard)
        if secret:
            assert secret not in text
    if settings.owner_password is not None:
        assert settings.owner_password.get_secret_value() not in text
    assert set(payload) >= {"ok", "nodes", "schema", "mongo", "pools", "stats", "problems"}
    assert all(set(n) >= {"shard", "role", "address", "reachable"} for n in payload["nodes"])


def test_elearn_health_prints_tables_and_exits_zero_when_healthy(
    world: World, cluster: LocalCluster
) -> None:
    result = CliRunner().invoke(
        cli_app(), ["health"], env={"ELEARN_HOME": str(cluster.home)}, terminal_width=200
    )
    assert result.exit_code == 0, result.output
    for title in ("nodes", "schema", "content store", "connection pools", "platform statistics"):
        assert title in result.output
    assert "healthy" in result.output


def test_elearn_health_json_prints_the_report_dictionary(
    world: World, cluster: LocalCluster
) -> None:
    result = CliRunner().invoke(
        cli_app(), ["health", "--json"], env={"ELEARN_HOME": str(cluster.home)}
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is True and len(payload["nodes"]) == 6


def test_elearn_stats_prints_the_headline_figures_per_shard_and_merged(
    world: World, cluster: LocalCluster
) -> None:
    expected = truth.platform(truth.read_raw(cluster))
    env = {"ELEARN_HOME": str(cluster.home)}
    table = CliRunner().invoke(cli_app(), ["stats"], env=env, terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "platform statistics" in table.output and "all" in table.output

    result = CliRunner().invoke(cli_app(), ["stats", "--json"], env=env)
    assert result.exit_code == 0, result.output
    rows = {row.pop("shard"): row for row in json.loads(result.stdout)}
    assert set(rows) == {"na", "eu", "apac", "all"}
    for shard, figures in expected.items():
        assert rows[shard] == {k: (str(v) if k == "revenue" else v) for k, v in figures.items()}, (
            shard
        )
