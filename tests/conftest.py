"""Fixtures shared by every tier: one real embedded cluster per test session.

The cluster (3 primaries, each streaming to 1 replica) is built from the
machine's PostgreSQL binaries in a temporary ELEARN_HOME on free ports, exactly
as ``elearn cluster up`` builds it for users. Set ``ELEARN_TEST_HOME`` to keep
and reuse one between runs while developing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from elearn_data import migrations
from elearn_data.cluster.local import (
    APP_USER,
    OWNER_USER,
    SUPERUSER,
    LocalCluster,
    find_free_base_port,
)
from elearn_data.config import Settings
from elearn_data.database import Database, connect
from elearn_data.models import Base
from elearn_data.models.gamification import DEFAULT_POINTS


def make_home(prefix: str) -> Path:
    """Return a fresh folder the ``postgres`` OS user can traverse."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    home.chmod(0o755)
    return home


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """The session's embedded cluster."""
    reuse = os.environ.get("ELEARN_TEST_HOME")
    home = Path(reuse) if reuse else make_home("elearn-test-")
    local = LocalCluster(home, fsync_initdb=False)
    local.up(replicas=1, base_port=None if local.exists else find_free_base_port())
    yield local
    if not reuse:
        local.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(cluster: LocalCluster) -> Settings:
    """Settings of the session's cluster, read from the file `cluster up` wrote.

    Pools are larger than the default so that the concurrency tests (64 threads)
    measure the database, not pool waits.
    """
    return Settings(
        home=cluster.home,
        pool={"size": 10, "max_overflow": 70},
        # Cheap argon2 parameters: the tests exercise logic, not the hash's cost.
        argon2_time_cost=1,
        argon2_memory_kib=8192,
        argon2_allow_weak=True,
        # The content store: in-process mongomock unless a real MongoDB is given.
        mongo_uri=os.environ.get("ELEARN_TEST_MONGO_URI") or None,
        mongo_db=f"elearn_test_{secrets.token_hex(4)}",
    )


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> Settings:
    """The session cluster with every shard at the head revision."""
    migrations.upgrade(settings)
    return settings


@pytest.fixture(scope="session")
def db(migrated: Settings) -> Iterator[Database]:
    """One connect() object for the whole session (it is thread-safe)."""
    database = connect(migrated)
    yield database
    database.close()


def truncate_all(cluster: LocalCluster) -> None:
    """Empty every table of every shard primary (fast per-test cleanup)."""
    state = cluster.state()
    # shard_meta is the shard's identity (written by migrations), not data; the point
    # values (point_rules) are catalog rows the migration inserts: back to the defaults.
    kept = ("shard_meta", "point_rules")
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name not in kept)
    for shard in state.shards:
        conn = cluster.admin_connect(state.primary_of(shard), dbname="elearn")
        try:
            with conn.cursor() as cur:
                cur.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
                cur.executemany(
                    "UPDATE point_rules SET points = %s WHERE event = %s",
                    [(points, event) for event, points in DEFAULT_POINTS.items()],
                )
        finally:
            conn.close()


@pytest.fixture
def clean(cluster: LocalCluster, db: Database) -> Database:
    """The session's Database over empty tables and an empty content store."""
    truncate_all(cluster)
    db.content_store.faults.clear()
    db.content_store.clear()
    return db


@pytest.fixture
def scratch(cluster: LocalCluster, settings: Settings) -> Iterator[Settings]:
    """Settings of a new, empty database on every shard primary (dropped afterwards).

    Created with pytest-postgresql's DatabaseJanitor as the cluster superuser and
    handed to the schema owner exactly as `elearn cluster up` prepares `elearn`,
    so migrations can be run up and down without touching the session database.
    """
    state = cluster.state()
    dbname = f"elearn_scratch_{secrets.token_hex(4)}"
    cluster.allow_database(dbname)  # pg_hba.conf: one rule per role and database
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
        cluster.secure_database(node, dbname)
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
    cluster.forbid_database(dbname)
