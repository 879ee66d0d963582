"""Automatic failover under Patroni: no operator command, no acknowledged write lost.

Each drill crashes a shard's leader while threads write through the session's
one ``connect()`` object, then checks what an application relies on: the shard
is writable again through that same object, every acknowledged write is on the
new primary (sync durability), the old leader streams from the new one as a
replica, the health report is clean again, and reads follow the new roles.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from elearn_data.cluster.ha import HACluster
from elearn_data.database import Database
from tests.integration.ha.drills import DEADLINE_S, crash_drill, leader_of, wait_healthy

pytestmark = pytest.mark.timeout(400)


def reads_follow_roles(db: Database, shard: str, new_primary_port: int, replica_port: int) -> None:
    """Reads of ``shard`` never use the new primary as a replica and reach the rejoined node."""
    deadline = time.monotonic() + DEADLINE_S
    seen_replica = False
    while not seen_replica:
        conn, choice = db.cluster.selector.connect(shard, None)
        try:
            port, in_recovery = conn.execute(
                text("SELECT inet_server_port(), pg_is_in_recovery()")
            ).one()
        finally:
            conn.close()
        if choice.reason.startswith("replica"):
            assert in_recovery, f"{choice.node.label} read as a replica while it is a primary"
            assert port != new_primary_port
            seen_replica = port == replica_port
        else:
            assert port == new_primary_port and not in_recovery
        assert time.monotonic() < deadline, "the rejoined node was never read as a replica"
        time.sleep(0.05)


def test_a_killed_postmaster_fails_over_by_itself_and_loses_no_acknowledged_write(
    ha: HACluster, ready: Database
) -> None:
    result = crash_drill(ha, ready, "na", kill="postmaster", writers=4)
    print(f"\n{result.summary()}")
    assert result.mode == "sync"
    assert result.new_leader != result.old_leader
    assert result.acknowledged_before_kill > 0
    assert result.lost == []
    # The old leader streams from the new one (crash_drill waited for it) ...
    view = ha.views()["na"]
    roles = {m.name: m.role for m in view.members}
    assert roles[result.new_leader] == "leader"
    assert roles[result.old_leader] in ("sync_standby", "replica")
    # ... status() follows Patroni, the health report is clean again ...
    status = {n.name: n for n in ha.status()}
    assert status[result.new_leader].role == "primary"
    assert status[result.old_leader].role == "replica" and status[result.old_leader].in_recovery
    report = wait_healthy(ready)
    assert report.ok, report.problems
    # ... and reads follow the roles: the rejoined node is a replica again.
    reads_follow_roles(ready, "na", status[result.new_leader].port, status[result.old_leader].port)


def test_a_killed_node_fails_over_after_the_ttl_and_rejoins_when_it_returns(
    ha: HACluster, ready: Database
) -> None:
    result = crash_drill(ha, ready, "eu", kill="node", writers=3)
    print(f"\n{result.summary()}")
    assert result.new_leader != result.old_leader
    assert result.lost == []
    assert leader_of(ha, "eu").name == result.new_leader
    report = wait_healthy(ready)
    assert report.ok, report.problems
