"""`elearn cluster status` and `db.health()` on an HA cluster report Patroni's view."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from elearn_data.cluster.ha import HACluster
from elearn_data.config import Settings
from elearn_data.database import Database
from elearn_data.errors import ConfigurationError, InvalidInput

pytestmark = pytest.mark.timeout(300)

FIELDS = {
    "shard",
    "role",
    "host",
    "port",
    "dbname",
    "data_dir",
    "up",
    "in_recovery",
    "replay_lag_bytes",
}


def elearn(cluster: HACluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ELEARN_HOME": str(cluster.home)}
    return subprocess.run(
        [sys.executable, "-m", "elearn_data.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_status_json_keeps_its_fields_and_shows_patroni_roles(
    ha: HACluster, ready: Database
) -> None:
    proc = elearn(ha, "cluster", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    nodes = json.loads(proc.stdout)
    assert all(set(n) >= FIELDS for n in nodes)
    views = ha.views()
    for shard in ("na", "eu", "apac"):
        mine = [n for n in nodes if n["shard"] == shard]
        leader = views[shard].leader
        assert leader is not None
        assert [n["name"] for n in mine if n["role"] == "primary"] == [leader.name]
        assert all(n["up"] for n in mine)
        assert all(n["in_recovery"] is (n["role"] == "replica") for n in mine)
        # sync durability: Patroni picked the replica as the synchronous standby.
        assert views[shard].sync_standbys == [n["name"] for n in mine if n["role"] == "replica"]
        assert [n["sync_state"] for n in mine if n["role"] == "replica"] == ["sync"]


def test_health_reports_patroni_next_to_the_node_rows(ha: HACluster, ready: Database) -> None:
    report = ready.health()
    assert report.ok, report.problems
    by_shard = {p["shard"]: p for p in report.patroni}
    assert set(by_shard) == {"na", "eu", "apac"}
    for shard, view in by_shard.items():
        assert view["leader"] and view["timeline"] >= 1 and view["error"] is None
        assert len(view["sync_standby"]) == 1
        members = {m["name"]: m for m in view["members"]}
        assert members[view["sync_standby"][0]]["state"] == "streaming"
        rows = [n for n in report.nodes if n.shard == shard]
        primary = next(n for n in rows if n.role == "primary")
        assert primary.patroni_role == "leader" and primary.in_recovery is False
        # Every node is a replica candidate: the leader's candidate refuses a
        # standby connection, which is expected and not a problem.
        candidates = {n.address: n for n in rows if n.role == "replica"}
        assert len(candidates) == 2
        assert sorted(str(n.patroni_role) for n in candidates.values()) == [
            "leader",
            "sync_standby",
        ]
        standby = next(n for n in candidates.values() if n.patroni_role == "sync_standby")
        assert standby.reachable and standby.in_recovery is True
    assert report.to_dict()["patroni"][0]["members"]


def test_a_killed_replica_is_a_health_problem_until_it_is_back(
    ha: HACluster, ready: Database
) -> None:
    replica = next(n for n in ha.status() if n.shard == "apac" and n.role == "replica")
    node = next(n for n in ha.state().nodes if n.name == replica.name)
    ha.kill_node(node)
    try:
        report = ready.health()
        assert not report.ok
        assert any(replica.name in p or str(node.port) in p for p in report.problems), (
            report.problems
        )
    finally:
        ha.start("apac", "replica")
        ha.wait_ready("apac")
    settings = Settings(home=ha.home)
    assert settings.patroni_api["apac"]


def test_bad_input_is_refused_before_anything_runs(ha: HACluster) -> None:
    with pytest.raises(InvalidInput):
        ha.failover("mars")
    with pytest.raises(InvalidInput):
        HACluster(ha.home).up(replicas=9)
    plain = elearn(ha, "cluster", "stop", "mars")
    assert plain.returncode != 0


def test_up_refuses_to_turn_a_plain_cluster_into_an_ha_one(tmp_path: Path) -> None:
    home = tmp_path
    (home / "cluster.json").write_text("{}")
    with pytest.raises(ConfigurationError, match="without --ha"):
        HACluster(home).up(replicas=1)


def test_a_second_up_changes_nothing_and_elearn_health_shows_patroni(
    ha: HACluster, ready: Database
) -> None:
    before = {n.name: n.role for n in ha.status()}
    timelines = {s: v.leader.timeline for s, v in ha.views().items() if v.leader}
    proc = elearn(ha, "cluster", "up", "--ha")
    assert proc.returncode == 0, proc.stderr
    assert {n.name: n.role for n in ha.status()} == before
    assert {s: v.leader.timeline for s, v in ha.views().items() if v.leader} == timelines
    assert ha.state().durability == "sync"
    health = elearn(ha, "health")
    assert health.returncode == 0, health.stdout + health.stderr
    assert "Patroni" in health.stdout
    for name, role in before.items():
        if role == "primary":
            assert name in health.stdout
