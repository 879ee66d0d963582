"""Recovery and the outbox run off the request path, one worker per shard at a time.

* Two processes recovering at the same moment settle every in-doubt
  transaction exactly once (each shard's recovery lock admits one of them; the
  other skips the shard), and neither fails.
* ``connect()`` returns while its start-up recovery pass is blocked, and the
  object serves calls meanwhile; ``wait_idle`` waits for the pass.
* A registration does not apply other callers' outbox rows (600 are pending on
  its shard and stay pending when it returns, while another relayer holds the
  shard); the relay applies all of them, the new user's included, soon after.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg2.extras import Json
from sqlalchemy import func, select

from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.models import ContentOutbox
from elearn_data.regions import Region
from elearn_data.services.outbox import RELAY_LOCK_KEY
from elearn_data.sharding import twophase
from tests.integration.api.helpers import register

pytestmark = pytest.mark.timeout(180)

POLL_S = 30.0
DECIDE = "INSERT INTO twophase_decisions (gid, committed) VALUES (%s, true)"


def _admin(cluster: LocalCluster, shard: str) -> Any:
    state = cluster.state()
    conn = cluster.admin_connect(state.primary_of(shard), dbname="elearn")
    conn.autocommit = True
    return conn


def _prepare_in_doubt(db: Database, shard: str, count: int) -> list[str]:
    """Leave ``count`` prepared transactions of the application role on ``shard``."""
    gids = []
    for _ in range(count):
        gid = twophase.new_gid(shard)
        raw = db.cluster.engines.primary(shard).engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("SELECT 1")
            cur.execute("PREPARE TRANSACTION %s", (gid,))
        finally:
            raw.invalidate()
        gids.append(gid)
    return gids


def _prepared(cluster: LocalCluster, gids: list[str]) -> set[str]:
    found: set[str] = set()
    for shard in cluster.state().shards:
        conn = _admin(cluster, shard)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT gid FROM pg_prepared_xacts WHERE gid = ANY(%s)", (gids,))
                found.update(row[0] for row in cur.fetchall())
        finally:
            conn.close()
    return found


@contextmanager
def _held(cluster: LocalCluster, shard: str, key: int) -> Iterator[None]:
    """Hold the session-level advisory lock ``key`` on ``shard``'s primary (another worker)."""
    conn = _admin(cluster, shard)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (key,))
        yield
    finally:
        conn.close()


RECOVERER = textwrap.dedent(
    """
    import json, os, sys, time
    from datetime import timedelta
    from elearn_data.config import Settings
    from elearn_data.database import Database
    from elearn_data.sharding import twophase

    db = Database(Settings(home=sys.argv[1], recover_on_connect=False,
                           recover_interval_s=0, outbox_relay=False))
    gate = sys.argv[2]
    db.cluster.engines.primary("eu").engine.connect().close()  # pools warm before the gate
    print("ready", flush=True)
    while not os.path.exists(gate):
        time.sleep(0.001)
    # What the background pass of every connect() does: skip a shard being recovered.
    report = twophase.recover(db.cluster.engines, grace=timedelta(0), wait=False)
    print(json.dumps({"settled": [g for _, g in report.committed + report.rolled_back],
                      "busy": report.busy, "unreachable": report.unreachable}), flush=True)
    db.close()
    """
)


def test_two_processes_recovering_at_once_settle_each_transaction_once(
    clean: Database, cluster: LocalCluster, tmp_path: Path
) -> None:
    gids = [gid for shard in clean.router.shards for gid in _prepare_in_doubt(clean, shard, 15)]
    # Half of them were decided (commit), half not (recovery claims the abort).
    decided = set(gids[::2])
    for gid in decided:
        conn = _admin(cluster, twophase.coordinator_of(gid) or "")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO twophase_decisions (gid, committed) VALUES (%s, true)", (gid,)
                )
        finally:
            conn.close()
    gate = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RECOVERER, str(cluster.home), str(gate)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    gate.touch()
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        reports.append(json.loads(out.strip().splitlines()[-1]))

    settled = [gid for report in reports for gid in report["settled"]]
    assert sorted(settled) == sorted(gids)  # every one, none twice
    assert [r["unreachable"] for r in reports] == [[], []]
    for report, other in (reports, reports[::-1]):
        for shard in report["busy"]:  # skipped here: recovered by the other process
            assert shard not in other["busy"]
            assert any(twophase.coordinator_of(g) == shard for g in other["settled"])
    assert _prepared(cluster, gids) == set()
    # Each transaction ended as decided: the decision rows say so on each coordinator.
    committed: set[str] = set()
    for shard in clean.router.shards:
        conn = _admin(cluster, shard)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT gid FROM twophase_decisions WHERE gid = ANY(%s) AND committed",
                    (gids,),
                )
                committed.update(row[0] for row in cur.fetchall())
        finally:
            conn.close()
    assert committed == decided


def test_a_background_pass_skips_a_shard_another_recoverer_holds(
    clean: Database, cluster: LocalCluster
) -> None:
    [gid] = _prepare_in_doubt(clean, "eu", 1)
    with _held(cluster, "eu", twophase.RECOVERY_LOCK_KEY):
        fresh = Database(clean.settings.model_copy(update={"twophase_grace_s": 0.0}))
        try:
            assert fresh.wait_idle()
            assert _prepared(cluster, [gid]) == {gid}  # skipped: the holder recovers eu
            report = twophase.recover(clean.cluster.engines, grace=timedelta(0), wait=False)
            assert report.busy == ["eu"] and report.resolved == 0
        finally:
            fresh.close()
    report = clean.recover(grace_s=0)
    assert report.rolled_back == [("eu", gid)] and report.busy == []
    assert _prepared(cluster, [gid]) == set()


def test_connect_returns_while_its_start_up_recovery_is_blocked(
    clean: Database, cluster: LocalCluster
) -> None:
    [gid] = _prepare_in_doubt(clean, "apac", 1)
    # An uncommitted decision row: the recoverer's claim of an abort waits for it.
    blocker = cluster.admin_connect(cluster.state().primary_of("apac"), dbname="elearn")
    blocker.autocommit = False
    try:
        with blocker.cursor() as cur:
            cur.execute(DECIDE, (gid,))
        fresh = Database(clean.settings.model_copy(update={"twophase_grace_s": 0.0}))
        try:
            assert fresh.wait_idle(timeout_s=0.2) is False  # still blocked on our row
            user = register(fresh, "asia")  # the object works meanwhile
            assert fresh.users.get(user).id == user
            blocker.commit()  # decided: commit
            assert fresh.wait_idle(timeout_s=POLL_S)
        finally:
            fresh.close()
    finally:
        blocker.close()
    assert _prepared(cluster, [gid]) == set()


def _pending(cluster: LocalCluster, shard: str) -> int:
    conn = _admin(cluster, shard)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM content_outbox WHERE processed_at IS NULL")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_a_registration_leaves_other_rows_to_the_relay_which_applies_them_soon_after(
    clean: Database, cluster: LocalCluster
) -> None:
    others = [uuid.uuid4() for _ in range(600)]
    email = f"relay-{uuid.uuid4().hex[:8]}@example.org"
    # Another process's relayer holds eu from before the 600 rows exist until
    # after the registration returns: no relayer can apply a row meanwhile.
    with _held(cluster, "eu", RELAY_LOCK_KEY):
        conn = _admin(cluster, "eu")
        try:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO content_outbox (kind, payload) VALUES ('ensure_preferences', %s)",
                    [(Json({"user_id": str(uid)}),) for uid in others],
                )
        finally:
            conn.close()
        user = register(clean, Region.EUROPE.value, email=email)
        # The call returned with every row still pending: it applied none of them.
        assert _pending(cluster, "eu") == 601
        found = clean.users.find_by_email(email)
        assert found is not None and found.id == user
    deadline = time.monotonic() + POLL_S
    while _pending(cluster, "eu"):
        assert time.monotonic() < deadline, "the relay never drained the outbox"
        time.sleep(0.05)
    store = clean.content_store.preferences
    assert store.get(user).user_id == user
    assert all(store.get(uid).user_id == uid for uid in others[::50])
    with clean.writer("eu") as uow:
        left = uow.execute(
            select(func.count()).where(ContentOutbox.processed_at.is_(None)), shard="eu"
        ).scalar_one()
    assert left == 0
