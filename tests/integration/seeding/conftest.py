"""Seeding writes thousands of rows: leave the session's cluster empty for the next module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from tests.support import truncate_all


@pytest.fixture(scope="module", autouse=True)
def _empty_afterwards(cluster: LocalCluster, db: Database) -> Iterator[None]:
    yield
    truncate_all(cluster)
    db.content_store.clear()
