"""Health after a failover: every configured node stays a row, and a shard short of replicas
is degraded (``ok`` False with the reason) until ``cluster up`` rebuilds the fenced node."""

from __future__ import annotations

import pytest

from elearn_data.cluster.local import LocalCluster
from elearn_data.database import connect
from elearn_data.health import health_report
from tests.support import drill_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_a_failover_leaves_the_shard_degraded_until_the_fenced_node_is_rebuilt(
    drill_cluster: LocalCluster,
) -> None:
    cluster = drill_cluster
    db = connect(drill_settings(cluster.home))
    try:
        assert health_report(db).ok
    finally:
        db.close()
    old = cluster.state().primary_of("eu")

    promoted = cluster.failover("eu")

    db = connect(drill_settings(cluster.home))
    try:
        report = health_report(db)
    finally:
        db.close()
    assert not report.ok
    eu = [n for n in report.nodes if n.shard == "eu"]
    # The fenced old primary is still a row, out of service and down.
    assert len(eu) == 2, eu
    fenced = [n for n in eu if not n.in_service]
    assert len(fenced) == 1
    assert fenced[0].address == f"127.0.0.1:{old.port}"
    assert not fenced[0].reachable
    serving = [n for n in eu if n.in_service]
    assert [(n.role, n.reachable, n.in_recovery) for n in serving] == [("primary", True, False)]
    assert serving[0].server == f"127.0.0.1:{promoted.port}"
    assert "shard eu is degraded: 0 of 1 configured replica(s) in service" in report.problems
    assert any("out of service" in p and str(old.port) in p for p in report.problems)
    # The other shards are untouched: six rows in all, no problem named elsewhere.
    assert len(report.nodes) == 6
    assert not [p for p in report.problems if "shard na" in p or "shard apac" in p]
    # The schema is judged from the serving nodes only.
    assert {s.shard: s.state for s in report.schema} == {"apac": "ok", "eu": "ok", "na": "ok"}

    cluster.up()
    db = connect(drill_settings(cluster.home))
    try:
        healed = health_report(db)
    finally:
        db.close()
    assert healed.ok, healed.problems
    assert len(healed.nodes) == 6 and all(n.in_service for n in healed.nodes)
