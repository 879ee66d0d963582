"""Fixtures of the database-logic tests (functions and triggers of revisions 0002/0003)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from elearn_data.database import Database
from tests.integration.db_logic.helpers import owner_connection


def record_shard_names(db: Database) -> None:
    """Write each shard's name into shard_meta, as the packaged env.py does after a migration.

    Invoice numbers need the shard's name; a cleanup that emptied shard_meta (as
    ``truncate_all`` once did) must not make these tests depend on test order.
    """
    # As the owner: shard_meta is read-only for the application role.
    for shard in db.router.shards:
        with owner_connection(db, shard) as conn:
            conn.execute(
                text(
                    "INSERT INTO shard_meta (key, value) VALUES ('shard', :shard)"
                    " ON CONFLICT (key) DO NOTHING"
                ),
                {"shard": shard},
            )


@pytest.fixture(autouse=True)
def shard_names(db: Database) -> None:
    """Every test starts with each shard's name recorded."""
    record_shard_names(db)


@pytest.fixture
def fresh(clean: Database) -> Database:
    """Empty tables on every shard (for tests that count all rows of a shard)."""
    record_shard_names(clean)
    return clean
