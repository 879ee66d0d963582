"""Scratch databases for the benchmark: one per shard, migrated, dropped afterwards.

``elearn bench`` must not touch the platform's own data. On the embedded
cluster it connects as the cluster superuser (the password is in
``cluster.json``), creates a database named ``elearn_bench_<random>`` on every
shard primary (owned by the schema owner, the application role with the same
rights as on the real database), upgrades it to the head revision, waits until
every replica has replayed it, and yields Settings whose shard URLs name it.
On exit every scratch database is dropped, in-doubt prepared transactions of
the run included (a prepared transaction would keep ``DROP DATABASE`` from
succeeding).

Each database is prepared by :meth:`LocalCluster.prepare_database`, the recipe of
the platform's own database and of the tests' scratch databases.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from psycopg2 import sql

from elearn_data import migrations
from elearn_data.cluster.local import HOST, SUPERUSER, LocalCluster, NodeSpec
from elearn_data.config import Settings, url_hosts
from elearn_data.errors import ConfigurationError

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "elearn_bench_"
REPLAY_WAIT_S = 30.0
# Suffix of the plain single database (the union of the shards' rows) of a run.
PLAIN_SUFFIX = "_one"


def with_database(url: str, dbname: str) -> str:
    """Return the libpq URI ``url`` naming database ``dbname`` instead of its own."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def _check_matches(settings: Settings, cluster: LocalCluster) -> None:
    """Refuse settings that do not describe the embedded cluster under ``settings.home``."""
    state = cluster.state()
    for shard in settings.shard_names:
        if shard not in state.shards:
            raise ConfigurationError(
                f"shard {shard!r} of the settings is not a shard of the embedded cluster "
                f"under {cluster.home}"
            )
        primary_url = settings.shards[shard].primary or ""
        ports = {port for _, port in url_hosts(primary_url)}
        if state.primary_of(shard).port not in ports:
            raise ConfigurationError(
                f"the settings' primary of shard {shard!r} is not the embedded cluster's "
                f"(port {state.primary_of(shard).port}): elearn bench runs on the embedded "
                "cluster only"
            )


def _create(cluster: LocalCluster, node: NodeSpec, dbname: str) -> None:
    # The real database's recipe: owned by the schema owner, the application role
    # with the same rights, no CONNECT/CREATE/TEMPORARY for PUBLIC.
    cluster.prepare_database(node, dbname)


def _drop(cluster: LocalCluster, node: NodeSpec, dbname: str) -> None:
    """Drop ``dbname`` on ``node``, rolling back any transaction still prepared in it."""
    conn = cluster.admin_connect(node, dbname=dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT gid FROM pg_prepared_xacts WHERE database = current_database()")
            for (gid,) in cur.fetchall():
                cur.execute("ROLLBACK PREPARED %s", (gid,))
    finally:
        conn.close()
    conn = cluster.admin_connect(node)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
    finally:
        conn.close()


def plain_database(settings: Settings, shard: str) -> str:
    """Create the run's plain single database on ``shard``'s primary; return its superuser URL.

    It is named after the scratch databases (``<scratch>_one``) and dropped with
    them by :func:`scratch_databases`: the benchmarks' "one PostgreSQL holding
    the same rows" baseline.
    """
    cluster = LocalCluster(settings.home)
    state = cluster.state()
    node = state.primary_of(shard)
    scratch = urlsplit(settings.shards[shard].primary or "").path.lstrip("/")
    if not scratch.startswith(SCRATCH_PREFIX):
        raise ConfigurationError(f"not a scratch database: {scratch!r}")
    dbname = f"{scratch}{PLAIN_SUFFIX}"
    _create(cluster, node, dbname)
    return (
        f"postgresql+psycopg2://{SUPERUSER}:{state.superuser_password}@{HOST}:{node.port}/{dbname}"
    )


def _drop_plain(cluster: LocalCluster, node: NodeSpec, dbname: str) -> None:
    conn = cluster.admin_connect(node)
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(f"{dbname}{PLAIN_SUFFIX}")
                )
            )
    finally:
        conn.close()


def _wait_replayed(cluster: LocalCluster, shards: list[str], timeout: float) -> None:
    """Wait until every running replica has replayed its primary's current WAL position."""
    state = cluster.state()
    deadline = time.monotonic() + timeout
    for shard in shards:
        conn = cluster.admin_connect(state.primary_of(shard))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_current_wal_lsn()")
                row = cur.fetchone()
                assert row is not None
                target = row[0]
        finally:
            conn.close()
        for replica in state.replicas_of(shard):
            if replica.needs_rebuild or not cluster.is_running(replica):
                continue
            conn = cluster.admin_connect(replica)
            try:
                with conn.cursor() as cur:
                    while True:
                        cur.execute(
                            "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), %s) >= 0", (target,)
                        )
                        row = cur.fetchone()
                        if row is not None and row[0]:
                            break
                        if time.monotonic() > deadline:
                            raise ConfigurationError(
                                f"replica {replica.name} did not replay the scratch schema "
                                f"within {timeout:g} s"
                            )
                        time.sleep(0.05)
            finally:
                conn.close()


@contextmanager
def scratch_databases(
    settings: Settings, *, progress: Callable[[str], None] | None = None
) -> Iterator[Settings]:
    """Yield Settings for fresh, migrated per-shard scratch databases (dropped on exit).

    Raises:
        ConfigurationError: there is no embedded cluster under ``settings.home``,
            or the settings describe another cluster.
    """
    say = progress or (lambda _msg: None)
    cluster = LocalCluster(settings.home)
    if not cluster.exists:
        raise ConfigurationError(
            f"elearn bench creates scratch databases on the embedded cluster, and there is "
            f"none under {cluster.home} (run `elearn cluster up`)"
        )
    _check_matches(settings, cluster)
    state = cluster.state()
    dbname = f"{SCRATCH_PREFIX}{secrets.token_hex(4)}"
    created: list[NodeSpec] = []
    # pg_hba.conf names every database the application role may reach.
    cluster.allow_database(dbname)
    try:
        say(f"creating scratch database {dbname} on {len(settings.shard_names)} primaries")
        for shard in settings.shard_names:
            node = state.primary_of(shard)
            _create(cluster, node, dbname)
            created.append(node)
        shards: dict[str, Any] = {
            name: cfg.model_copy(
                update={
                    "primary": with_database(cfg.primary or "", dbname),
                    "replicas": tuple(with_database(url, dbname) for url in cfg.replicas),
                }
            )
            for name, cfg in settings.shards.items()
        }
        scratch = settings.model_copy(update={"shards": shards})
        say("migrating the scratch databases to head")
        migrations.upgrade(scratch)
        _wait_replayed(cluster, list(settings.shard_names), REPLAY_WAIT_S)
        yield scratch
    finally:
        for node in created:
            try:
                _drop_plain(cluster, node, dbname)
                _drop(cluster, node, dbname)
            except Exception as exc:  # cleanup must not hide the run's own outcome
                log.warning("could not drop scratch database %s on %s: %s", dbname, node.name, exc)
        if created:
            say(f"dropped scratch database {dbname}")
        try:
            cluster.forbid_database(dbname)
        except Exception as exc:  # cleanup must not hide the run's own outcome
            log.warning("could not remove %s from pg_hba.conf: %s", dbname, exc)
