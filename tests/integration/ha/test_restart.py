"""`down` and `up` of an HA cluster: everything stops, everything comes back with the data.

A running ``connect()`` object writes again once the cluster is back (its
first call on each stale pooled connection is retried by ``db.write``).
"""

from __future__ import annotations

import pytest

from elearn_data.cluster.ha import HACluster
from elearn_data.database import Database
from elearn_data.regions import Region
from tests.integration.ha.drills import admin_query, insert_user_at, leader_of

pytestmark = pytest.mark.timeout(400)


def user_count(ha: HACluster, shard: str) -> int:
    return int(admin_query(ha, leader_of(ha, shard), "SELECT count(*) FROM users")[0][0])


def test_down_stops_every_process_and_up_brings_the_cluster_back_with_its_data(
    ha: HACluster, ready: Database
) -> None:
    insert_user_at(ready, Region.EUROPE)
    counts = {shard: user_count(ha, shard) for shard in ha.state().shards}
    ha.down()
    state = ha.state()
    assert all(ha.patroni_pid(n) is None and ha.postmaster_pid(n) is None for n in state.nodes)
    assert not any(n.up for n in ha.status())
    report = ready.health()
    assert not report.ok
    assert all(p["error"] for p in report.patroni)

    nodes = ha.up()
    assert all(n.up for n in nodes)
    assert sorted(n.role for n in nodes) == ["primary"] * 3 + ["replica"] * 3
    assert {shard: user_count(ha, shard) for shard in state.shards} == counts
    # The same connect() object writes again.
    _, port = insert_user_at(ready, Region.EUROPE)
    assert port == leader_of(ha, "eu").port
    assert user_count(ha, "eu") == counts["eu"] + 1


def test_the_first_write_after_a_switchover_succeeds_through_the_same_object(
    ha: HACluster, ready: Database
) -> None:
    """Pooled connections to the demoted primary are dead; ``db.write`` retries the one it meets."""
    before = {insert_user_at(ready, Region.NORTH_AMERICA)[1] for _ in range(5)}
    old = leader_of(ha, "na")
    assert before == {old.port}
    new = ha.failover("na")
    assert new.name != old.name
    _, port = insert_user_at(ready, Region.NORTH_AMERICA)  # no error: retried once
    assert port == new.port
