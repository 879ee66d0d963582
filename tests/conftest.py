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
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from elearn_data import migrations
from elearn_data.cluster.local import SUPERUSER, LocalCluster, find_free_base_port
from elearn_data.config import Settings
from elearn_data.database import Database, connect
from tests.support import dedicated_cluster, make_home, truncate_all


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
    handed to the schema owner by ``LocalCluster.prepare_database``, the recipe
    `elearn cluster up` prepares `elearn` with,
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
        cluster.prepare_database(node, dbname)
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


@pytest.fixture(scope="module")
def drill_cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """A fresh migrated cluster for one test module whose drills stop or promote nodes.

    The one way a test gets a cluster of its own (see ``tests/support.py``): a
    failover changes which node is the primary, so drills never touch the
    session's cluster. Each drill restores what it breaks before it ends.
    """
    name = request.module.__name__.rpartition(".")[2].replace("_", "-")
    with dedicated_cluster(f"elearn-{name}-") as cluster:
        yield cluster
