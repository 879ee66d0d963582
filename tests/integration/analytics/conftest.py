"""Fixtures of the analytics tests: the world (built once, reused while untouched) and its truth.

Tests that need other data use the ``clean`` fixture, which empties everything first.
"""

from __future__ import annotations

import pytest

from elearn_data.analytics import Analytics
from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from tests.integration.analytics import truth
from tests.integration.analytics.world import World, ensure_world


@pytest.fixture(scope="module")
def world(cluster: LocalCluster, db: Database) -> World:
    """The world, rebuilt only when something else changed the cluster's rows."""
    return ensure_world(db, cluster)


@pytest.fixture(scope="module")
def raw(world: World, cluster: LocalCluster) -> truth.Raw:
    return truth.read_raw(cluster)


@pytest.fixture
def analytics(db: Database) -> Analytics:
    return Analytics(db)
