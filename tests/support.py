"""Helpers shared by every test tier (import them from here, never from a conftest).

* :func:`build_wheel` -- the project's wheel, as `pip wheel` builds it.
* :func:`make_home` -- a folder the ``postgres`` OS user can traverse.
* :func:`truncate_all` -- empty every table of every shard primary.
* :func:`drill_settings` and :func:`dedicated_cluster` -- a fresh, migrated
  cluster for drills that stop, kill or promote nodes (never the session's
  cluster); the ``drill_cluster`` fixture of ``tests/conftest.py`` is the one
  way tests get one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elearn_data import migrations
from elearn_data.cluster.local import LocalCluster, find_free_base_port
from elearn_data.config import Settings
from elearn_data.database import Database
from elearn_data.models import Base
from elearn_data.models.gamification import DEFAULT_POINTS

# The migration's time of the default point values (revision 0009).
DEFAULT_POINTS_AT = datetime(2026, 12, 2, tzinfo=UTC)

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(dest: Path) -> Path:
    """Build the project's wheel (no dependencies) into ``dest``; return its path."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = dest.glob("elearn_data-*.whl")
    return wheel


def make_home(prefix: str) -> Path:
    """Return a fresh folder the ``postgres`` OS user can traverse."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    home.chmod(0o755)
    return home


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
                # One timestamp on every shard: catalog rows are identical everywhere.
                cur.executemany(
                    "UPDATE point_rules SET points = %s, updated_at = %s WHERE event = %s",
                    [
                        (points, DEFAULT_POINTS_AT, event)
                        for event, points in DEFAULT_POINTS.items()
                    ],
                )
        finally:
            conn.close()


def drill_settings(home: Path, **overrides: Any) -> Settings:
    """Settings of a dedicated cluster, tuned so that drills finish quickly.

    A replica that failed is retried after 0.5 s instead of 5 s (so a restarted
    replica is back in rotation within a drill), argon2 is cheap, and the
    content store is in-process.
    """
    values: dict[str, Any] = {
        "home": home,
        "pool": {"size": 10, "max_overflow": 20},
        "replica": {"retry_down_after_s": 0.5, "check_interval_s": 0.5},
        "argon2_time_cost": 1,
        "argon2_memory_kib": 8192,
        "argon2_allow_weak": True,
        "mongo_uri": None,
        "mongo_db": f"elearn_drill_{uuid.uuid4().hex[:8]}",
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def dedicated_cluster(prefix: str = "elearn-drill-") -> Iterator[LocalCluster]:
    """Build a fresh migrated 3-shard cluster (primary + 1 replica each); purge it afterwards."""
    home = make_home(prefix)
    cluster = LocalCluster(home, fsync_initdb=False)
    try:
        cluster.up(replicas=1, base_port=find_free_base_port())
        migrations.upgrade(drill_settings(home))
        yield cluster
    finally:
        cluster.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)


def forget_failures(db: Database, shard: str) -> None:
    """Undo what a stopped node taught ``db`` about ``shard``: dead pooled connections, down marks.

    A test that stops a node of the session's cluster calls this after starting
    it again, so that the next test finds the object as it found it.
    """
    for node in (db.cluster.engines.primary(shard), *db.cluster.engines.replicas(shard)):
        node.engine.dispose()
        node.health.down_until = 0.0
