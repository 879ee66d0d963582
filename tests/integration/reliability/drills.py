"""Fault-drill building blocks shared by the reliability tests and ``scripts/drill_failover.py``.

Everything here works on a *dedicated* embedded cluster (a failover changes
which node is the primary, so drills never touch the session cluster) and
talks to the servers two ways: through a ``connect()`` object, exactly as an
application does, and as the cluster superuser (``LocalCluster.admin_connect``)
to observe the truth on each node independently of the code under test.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert

from elearn_data import ids
from elearn_data.cluster.local import LocalCluster, NodeSpec
from elearn_data.config import Durability
from elearn_data.database import Database
from elearn_data.errors import ElearnDataError
from elearn_data.models import User
from elearn_data.regions import Region
from elearn_data.sharding.unit_of_work import UnitOfWork

# A region served by each default shard (drills pick a shard, rows need a region).
REGION_OF_SHARD = {"na": Region.NORTH_AMERICA, "eu": Region.EUROPE, "apac": Region.ASIA}

_n = itertools.count(1)


# ------------------------------------------------------------------ writes


def insert_user(db: Database, region: Region) -> uuid.UUID:
    """Insert one user row through ``db.write`` (the facade's retrying write path)."""
    user_id = ids.new_id(region)
    n = next(_n)

    def work(uow: UnitOfWork) -> None:
        uow.session.add(
            User(
                id=user_id,
                email=f"drill{n}-{user_id.hex[:12]}@example.org",
                password_hash="drill",
                first_name="Drill",
                last_name=f"Writer {n}",
                region=region.value,
                role="student",
            )
        )

    db.write(region, work)
    return user_id


def insert_user_on(uow: UnitOfWork, shard: str) -> uuid.UUID:
    """Insert one user of ``shard`` inside ``uow`` (a Core INSERT, ``shard=``); return its id."""
    region = REGION_OF_SHARD[shard]
    user_id = ids.new_id(region)
    uow.execute(
        insert(User).values(
            id=user_id,
            email=f"{user_id.hex}@example.org",
            password_hash="x",
            first_name="Edge",
            last_name="Case",
            region=region.value,
            role="student",
        ),
        shard=shard,
    )
    return user_id


def write_until_success(
    db: Database, region: Region, *, deadline_s: float, pause_s: float = 0.02
) -> tuple[uuid.UUID, float, int]:
    """Retry ``insert_user`` until it succeeds; return (id, seconds, failed attempts)."""
    started = time.monotonic()
    failures = 0
    while True:
        try:
            return insert_user(db, region), time.monotonic() - started, failures
        except ElearnDataError:
            failures += 1
            if time.monotonic() - started > deadline_s:
                raise
            time.sleep(pause_s)


# ------------------------------------------------------------ observation


def admin(cluster: LocalCluster, node: NodeSpec, dbname: str = "elearn") -> Any:
    """A superuser connection to one node (autocommit), for observing the truth."""
    return cluster.admin_connect(node, dbname=dbname)


def wal_position(cluster: LocalCluster, shard: str) -> int:
    """The WAL position of the shard's primary now, as the causal token counts it."""
    conn = admin(cluster, cluster.state().primary_of(shard))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def node_named(cluster: LocalCluster, name: str) -> NodeSpec:
    return next(n for n in cluster.state().nodes if n.name == name)


def present_user_ids(cluster: LocalCluster, shard: str, wanted: list[uuid.UUID]) -> set[uuid.UUID]:
    """Return which of ``wanted`` exist on the shard's current primary."""
    conn = admin(cluster, cluster.state().primary_of(shard))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id::text FROM users WHERE id = ANY(%s::uuid[])", ([str(u) for u in wanted],)
            )
            return {uuid.UUID(row[0]) for row in cur.fetchall()}
    finally:
        conn.close()


def show(cluster: LocalCluster, node: NodeSpec, setting: str) -> str:
    conn = admin(cluster, node, dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting(%s)", (setting,))
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def wait_replayed(cluster: LocalCluster, shard: str, timeout_s: float = 20) -> None:
    """Wait until every running replica of ``shard`` replayed its primary's current LSN."""
    state = cluster.state()
    conn = admin(cluster, state.primary_of(shard), dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_current_wal_lsn()::text")
            lsn = cur.fetchone()[0]
    finally:
        conn.close()
    for replica in state.replicas_of(shard):
        if replica.needs_rebuild:
            continue
        deadline = time.monotonic() + timeout_s
        conn = admin(cluster, replica, dbname="postgres")
        try:
            with conn.cursor() as cur:
                while True:
                    cur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))
                    if cur.fetchone()[0]:
                        break
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{replica.name} did not replay {lsn}")
                    time.sleep(0.02)
        finally:
            conn.close()


@dataclass(frozen=True)
class Leftovers:
    """What a shard primary still holds after a race or a crash drill."""

    prepared: list[str]
    waiting_locks: int
    prepared_locks: int
    idle_in_transaction: int

    @property
    def clean(self) -> bool:
        return not (
            self.prepared or self.waiting_locks or self.prepared_locks or self.idle_in_transaction
        )


def leftovers(cluster: LocalCluster, shard: str) -> Leftovers:
    """Prepared transactions, lock waits, locks held by prepared transactions, idle-in-tx sessions.

    Locks of prepared transactions belong to no backend (``pid IS NULL``,
    virtual transaction ``-1/<xid>``); an idle-in-transaction session of the
    application would be a leaked unit of work.
    """
    conn = admin(cluster, cluster.state().primary_of(shard))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT gid FROM pg_prepared_xacts ORDER BY gid")
            prepared = [row[0] for row in cur.fetchall()]
            cur.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            waiting = int(cur.fetchone()[0])
            cur.execute(
                "SELECT count(*) FROM pg_locks WHERE pid IS NULL AND locktype <> 'virtualxid'"
            )
            held = int(cur.fetchone()[0])
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state IN ('idle in transaction', "
                "'idle in transaction (aborted)') "
                "AND usename = 'elearn_app'"
            )
            idle = int(cur.fetchone()[0])
    finally:
        conn.close()
    return Leftovers(prepared, waiting, held, idle)


# How long a shard may take to come to rest: the background threads of every
# connect() object (the outbox relay, the recoverer) run short units of work of
# their own; theirs end within milliseconds, a leaked one never does.
AT_REST_S = 5.0


def assert_at_rest(cluster: LocalCluster, context: str = "") -> None:
    """Assert that no shard primary holds a leftover (see :func:`leftovers`), polling briefly."""
    deadline = time.monotonic() + AT_REST_S
    while True:
        found = {shard: leftovers(cluster, shard) for shard in cluster.state().shards}
        dirty = {shard: f for shard, f in found.items() if not f.clean}
        if not dirty:
            return
        assert time.monotonic() < deadline, f"not at rest {context}: {dirty}"
        time.sleep(0.05)


# -------------------------------------------------------------- durability


@dataclass
class DurabilityResult:
    """One kill-the-primary drill under a concurrent writer."""

    mode: Durability
    shard: str
    writers: int
    acknowledged_before_kill: int
    acknowledged_total: int
    lost: list[uuid.UUID]
    failed_writes: int
    stop_s: float  # pg_ctl stop -m immediate
    failover_s: float  # LocalCluster.failover (fence + promote + wait writable)
    first_write_s: float  # from the kill to the first write acknowledged by the new primary
    new_primary: str
    errors: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"{self.mode}: {len(self.lost)} of {self.acknowledged_before_kill} acknowledged "
            f"writes lost ({self.writers} writers, shard {self.shard}); "
            f"failover {self.failover_s:.2f} s, kill -> first write {self.first_write_s:.2f} s"
        )


def durability_drill(
    cluster: LocalCluster,
    db: Database,
    shard: str,
    *,
    writers: int = 4,
    warmup_s: float = 1.0,
    deadline_s: float = 30.0,
) -> DurabilityResult:
    """Kill ``shard``'s primary under concurrent writers, fail over, count lost acknowledged writes.

    Every writer thread inserts users on ``shard`` in a loop and records the id
    of each insert whose commit was acknowledged. After ``warmup_s`` the
    primary is killed (``pg_ctl stop -m immediate``: no shutdown checkpoint, no
    goodbye to the standby) and the replica promoted at once. Writers keep
    going (their calls fail until the promotion, then succeed through the same
    ``connect()`` object); the drill stops them after the first acknowledged
    write on the new primary and then checks, on the new primary, which
    acknowledged ids are missing.
    """
    region = REGION_OF_SHARD[shard]
    mode = cluster.state().durability
    # Per writer: (call started, call returned, id) of every acknowledged insert.
    acknowledged: list[list[tuple[float, float, uuid.UUID]]] = [[] for _ in range(writers)]
    errors: dict[str, int] = {}
    errors_lock = threading.Lock()
    stop = threading.Event()

    def writer(slot: int) -> None:
        mine = acknowledged[slot]
        while not stop.is_set():
            started = time.monotonic()
            try:
                user_id = insert_user(db, region)
            except ElearnDataError as exc:
                with errors_lock:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                time.sleep(0.01)
                continue
            mine.append((started, time.monotonic(), user_id))

    def acks() -> list[tuple[float, float, uuid.UUID]]:
        return [entry for per_writer in acknowledged for entry in list(per_writer)]

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(writers)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(warmup_s)
        assert acks(), f"no write was acknowledged during the warm-up: {errors}"
        killed_at = time.monotonic()
        cluster.stop(shard, "primary", mode="immediate")
        stopped_at = time.monotonic()
        promoted = cluster.failover(shard)
        promoted_at = time.monotonic()
        # A call that *started* after the old primary was dead can only have been
        # acknowledged by the new one: the first such ack ends the outage.
        end = time.monotonic() + deadline_s
        while not any(started > stopped_at for started, _, _ in acks()):
            assert time.monotonic() < end, f"no write succeeded within {deadline_s} s: {errors}"
            time.sleep(0.01)
        time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=deadline_s)
    everything = acks()
    old_primary = [u for started, done, u in everything if done <= stopped_at]
    first_done = min(done for started, done, _ in everything if started > stopped_at)
    ids_all = [u for _, _, u in everything]
    present = present_user_ids(cluster, shard, ids_all)
    return DurabilityResult(
        mode=mode,
        shard=shard,
        writers=writers,
        acknowledged_before_kill=len(old_primary),
        acknowledged_total=len(ids_all),
        lost=[u for u in ids_all if u not in present],
        failed_writes=sum(errors.values()),
        stop_s=stopped_at - killed_at,
        failover_s=promoted_at - stopped_at,
        first_write_s=first_done - killed_at,
        new_primary=promoted.name,
        errors=errors,
    )
