"""Fixtures of the database-logic tests (functions and triggers of revisions 0002/0003)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from pytest_postgresql.janitor import DatabaseJanitor
from sqlalchemy import text

from elearn_data.cluster.local import APP_USER, OWNER_USER, SUPERUSER, LocalCluster
from elearn_data.config import Settings
from elearn_data.database import Database


def record_shard_names(db: Database) -> None:
    """Write each shard's name into shard_meta, as alembic/env.py does after a migration.

    Invoice numbers need the shard's name; a cleanup that emptied shard_meta (as
    ``truncate_all`` once did) must not make these tests depend on test order.
    """
    for shard in db.router.shards:
        with db.cluster.engines.primary(shard).engine.begin() as conn:
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


@pytest.fixture
def scratch(cluster: LocalCluster, settings: Settings) -> Iterator[Settings]:
    """Settings of a new, empty database on every shard primary (dropped afterwards)."""
    state = cluster.state()
    dbname = f"elearn_dbl_{secrets.token_hex(4)}"
    janitors = []
    for shard in state.shards:
        node = state.primary_of(shard)
        janitor = DatabaseJanitor(
            user=SUPERUSER,
            password=state.superuser_password,
            host="127.0.0.1",
            port=node.port,
            dbname=dbname,
        )
        janitor.init()
        janitors.append(janitor)
        conn = cluster.admin_connect(node)
        with conn.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{dbname}" OWNER TO {OWNER_USER}')
        conn.close()
        conn = cluster.admin_connect(node, dbname=dbname)
        with conn.cursor() as cur:
            cur.execute(f"ALTER SCHEMA public OWNER TO {OWNER_USER}")
            cur.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            cur.execute(f"GRANT USAGE ON SCHEMA public TO {APP_USER}")
        conn.close()
    shards = {
        name: {
            "primary": (cfg.primary or "").replace("/elearn?", f"/{dbname}?"),
            "replicas": [url.replace("/elearn?", f"/{dbname}?") for url in cfg.replicas],
        }
        for name, cfg in settings.shards.items()
    }
    yield settings.model_copy(update={"shards": Settings(shards=shards).shards})
    for janitor in janitors:
        janitor.drop()
