"""Failover drills on an HA cluster (Patroni + etcd), shared by the tests and the drill script.

No drill calls a failover command: it breaks a server the way a crash would
(SIGKILL of the leader's postmaster, or of the whole node: Patroni and
PostgreSQL) and measures how long the *same* ``connect()`` object takes to get
a write acknowledged again, then counts the acknowledged writes missing on the
new primary. The truth is read as the cluster superuser on the node Patroni
names as leader, independently of the code under test.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import text

from elearn_data import ids, migrations
from elearn_data.cluster.ha import PATRONI_VENV_ENV, HACluster, ShardView
from elearn_data.cluster.local import NodeSpec, find_free_base_port
from elearn_data.config import Durability
from elearn_data.database import Database
from elearn_data.errors import ElearnDataError
from elearn_data.models import User
from elearn_data.regions import Region
from elearn_data.sharding.unit_of_work import UnitOfWork
from tests.integration.reliability.drills import REGION_OF_SHARD
from tests.support import drill_settings, make_home

KillKind = Literal["postmaster", "node"]
REPO = Path(__file__).resolve().parents[3]
# Every wait of a drill is bounded: a killed node takes Patroni's ttl (20 s) to be noticed.
DEADLINE_S = 90.0


def patroni_venv() -> Path:
    """The Patroni virtualenv shared by every test cluster (built once, then reused)."""
    return Path(os.environ.get(PATRONI_VENV_ENV) or REPO / ".venv" / "patroni")


@contextmanager
def ha_cluster(
    prefix: str, durability: Durability = "sync", replicas: int = 1
) -> Iterator[HACluster]:
    """Build a fresh migrated 3-shard HA cluster (leader + replicas each); purge it afterwards."""
    home = make_home(prefix)
    cluster = HACluster(home, fsync_initdb=False, patroni_venv=patroni_venv())
    try:
        cluster.up(
            replicas=replicas,
            base_port=find_free_base_port(start=20000, end=32000),
            durability=durability,
        )
        migrations.upgrade(drill_settings(home))
        yield cluster
    finally:
        cluster.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)


_n = itertools.count(1)


def insert_user_at(db: Database, region: Region) -> tuple[uuid.UUID, int]:
    """Insert one user through ``db.write``; return its id and the port of the server."""
    user_id = ids.new_id(region)
    n = next(_n)
    port: list[int] = []

    def work(uow: UnitOfWork) -> None:
        uow.session.add(
            User(
                id=user_id,
                email=f"ha{n}-{user_id.hex[:12]}@example.org",
                password_hash="drill",
                first_name="Drill",
                last_name=f"Writer {n}",
                region=region.value,
                role="student",
            )
        )
        uow.session.flush()
        shard = uow.router.shard_of_region(region)
        port[:] = [int(uow.execute(text("SELECT inet_server_port()"), shard=shard).scalar_one())]

    db.write(region, work)
    return user_id, port[0]


def node_named(cluster: HACluster, name: str) -> NodeSpec:
    return next(n for n in cluster.state().nodes if n.name == name)


def leader_of(cluster: HACluster, shard: str) -> NodeSpec:
    """The node Patroni names as the shard's leader (waits for one)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        leader = cluster.views()[shard].leader
        if leader is not None and leader.state == "running":
            return node_named(cluster, leader.name)
        assert time.monotonic() < deadline, f"shard {shard} has no leader"
        time.sleep(0.1)


def admin_query(cluster: HACluster, node: NodeSpec, sql: str, params: Any = None) -> list[Any]:
    conn = cluster.admin_connect(node, dbname="elearn")
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def present_on_leader(cluster: HACluster, shard: str, wanted: list[uuid.UUID]) -> set[uuid.UUID]:
    rows = admin_query(
        cluster,
        leader_of(cluster, shard),
        "SELECT id::text FROM users WHERE id = ANY(%s::uuid[])",
        ([str(u) for u in wanted],),
    )
    return {uuid.UUID(r[0]) for r in rows}


def wait_member_streaming(cluster: HACluster, shard: str, name: str) -> ShardView:
    """Wait until ``name`` is back in the shard as a streaming replica and the shard is ready."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        view = cluster.wait_ready(shard, timeout=DEADLINE_S)
        member = next((m for m in view.members if m.name == name), None)
        if member is not None and member.role != "leader" and member.state == "streaming":
            return view
        assert time.monotonic() < deadline, f"{name} did not rejoin: {view.to_dict()}"
        time.sleep(0.2)


@dataclass
class HADrillResult:
    """One crash of a shard's leader under concurrent writers, with no operator command."""

    mode: Durability
    kill: KillKind
    shard: str
    old_leader: str
    new_leader: str
    writers: int
    acknowledged_before_kill: int
    acknowledged_total: int
    lost: list[uuid.UUID]
    failed_writes: int
    promoted_s: float  # kill -> Patroni names a new running leader
    first_write_s: float  # kill -> first write acknowledged through the same connect() object
    rejoined_s: float  # kill -> the old leader streams as a replica again
    errors: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{self.mode}/{self.kill}: {len(self.lost)} of {self.acknowledged_total} "
            f"acknowledged writes lost; {self.old_leader} -> {self.new_leader}; "
            f"promoted {self.promoted_s:.2f} s, first write {self.first_write_s:.2f} s, "
            f"rejoined {self.rejoined_s:.2f} s"
        )


def crash_drill(
    cluster: HACluster,
    db: Database,
    shard: str,
    *,
    kill: KillKind = "postmaster",
    writers: int = 4,
    warmup_s: float = 1.0,
    after_s: float = 0.5,
) -> HADrillResult:
    """Crash ``shard``'s leader under ``writers`` threads writing through ``db``.

    ``kill="postmaster"`` SIGKILLs the leader's postmaster (its Patroni notices
    and hands over; the node rejoins by itself); ``kill="node"`` SIGKILLs its
    Patroni and postmaster together (Patroni's ttl expires, a replica takes
    over) and the drill starts the node again once the new leader is chosen,
    as a machine coming back would. Writers keep going throughout; the drill
    stops them ``after_s`` after the first write acknowledged after the kill.
    """
    region = REGION_OF_SHARD[shard]
    mode = cluster.state().durability
    old = leader_of(cluster, shard)
    # Per writer: (call started, call returned, id, server port) of every acknowledged insert.
    acknowledged: list[list[tuple[float, float, uuid.UUID, int]]] = [[] for _ in range(writers)]
    errors: dict[str, int] = {}
    errors_lock = threading.Lock()
    stop = threading.Event()

    def writer(slot: int) -> None:
        mine = acknowledged[slot]
        while not stop.is_set():
            started = time.monotonic()
            try:
                user_id, port = insert_user_at(db, region)
            except ElearnDataError as exc:
                with errors_lock:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                time.sleep(0.01)
                continue
            mine.append((started, time.monotonic(), user_id, port))

    def acks() -> list[tuple[float, float, uuid.UUID, int]]:
        return [entry for per_writer in acknowledged for entry in list(per_writer)]

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(writers)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(warmup_s)
        assert acks(), f"no write was acknowledged during the warm-up: {errors}"
        killed_at = time.monotonic()
        if kill == "postmaster":
            cluster.kill_postmaster(old)
        else:
            cluster.kill_node(old)
        deadline = killed_at + DEADLINE_S
        while True:
            leader = cluster.views()[shard].leader
            if leader is not None and leader.name != old.name and leader.state == "running":
                break
            assert time.monotonic() < deadline, f"no new leader for {shard}: {errors}"
            time.sleep(0.05)
        promoted_at = time.monotonic()
        new_leader = leader.name
        if kill == "node":
            cluster.start(shard, "replica")  # the node comes back; it must rejoin as a replica
        # Backends of a killed postmaster may finish a statement or two: the
        # outage ends with the first write the *new* leader acknowledges.
        while not any(port != old.port for _, _, _, port in acks()):
            assert time.monotonic() < deadline, f"no write succeeded after the kill: {errors}"
            time.sleep(0.01)
        time.sleep(after_s)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=DEADLINE_S)
    wait_member_streaming(cluster, shard, old.name)
    rejoined_at = time.monotonic()
    everything = acks()
    first_done = min(done for _, done, _, port in everything if port != old.port)
    ids_all = [u for _, _, u, _ in everything]
    present = present_on_leader(cluster, shard, ids_all)
    return HADrillResult(
        mode=mode,
        kill=kill,
        shard=shard,
        old_leader=old.name,
        new_leader=new_leader,
        writers=writers,
        acknowledged_before_kill=sum(1 for _, done, _, _ in everything if done <= killed_at),
        acknowledged_total=len(ids_all),
        lost=[u for u in ids_all if u not in present],
        failed_writes=sum(errors.values()),
        promoted_s=promoted_at - killed_at,
        first_write_s=first_done - killed_at,
        rejoined_s=rejoined_at - killed_at,
        errors=errors,
    )


def wait_healthy(db: Database, timeout_s: float = DEADLINE_S) -> Any:
    """Wait until ``db.health().ok``; return the last report."""
    deadline = time.monotonic() + timeout_s
    while True:
        report = db.health()
        if report.ok or time.monotonic() > deadline:
            return report
        time.sleep(0.5)
