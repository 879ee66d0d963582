"""One HA cluster (Patroni + etcd, sync durability) for every test of this package.

Built once per session, in its own temporary ELEARN_HOME on free ports below
32768, and purged at the end. The drills break real servers, so nothing else
uses this cluster; each test leaves it ready (every shard led, every node
streaming) for the next.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from elearn_data.cluster.ha import HACluster
from elearn_data.database import Database, connect
from tests.integration.ha.drills import ha_cluster
from tests.support import drill_settings


@pytest.fixture(scope="session")
def ha() -> Iterator[HACluster]:
    with ha_cluster("elearn-ha-test-", durability="sync") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def ha_db(ha: HACluster) -> Iterator[Database]:
    """One connect() object that lives through every failover of the session."""
    database = connect(drill_settings(ha.home))
    yield database
    database.close()


@pytest.fixture
def ready(ha: HACluster, ha_db: Database) -> Database:
    """The session's connect() object, with every shard ready before the test."""
    for shard in ha.state().shards:
        ha.wait_ready(shard)
    return ha_db
