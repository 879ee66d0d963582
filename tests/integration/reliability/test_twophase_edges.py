"""The edges of the two-phase protocol: wrong coordinators, unknown outcomes, cut participants.

Each test reproduces a fault an outside drill found and checks the rule that
now holds (docs/reliability.md, "Two-phase commit"):

* a gid names the shard that holds its decision (a unit of work built for a
  shard it never touched named that shard but decided elsewhere, and recovery
  then aborted a committed transaction);
* an ambiguous decision commit is read back from the decision record, never
  treated as an abort (a coordinator killed while its commit awaited a
  synchronous standby had committed locally);
* the committing call finishes COMMIT PREPARED itself on a fresh connection
  when a participant's connection is cut, so the same object reads its writes;
* a recoverer that aborts a live transaction makes the caller see a retryable
  ``AbortedByRecovery``, never ``Duplicate``;
* an interrupt (``KeyboardInterrupt``) once the decision may be committed
  leaves the participants prepared for recovery instead of rolling them back.

Crashes are SIGKILLed child processes (``os._exit`` at a crash point), cut
connections are ``pg_terminate_backend``, and a commit that hangs is a primary
waiting for a synchronous standby that does not exist.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from elearn_data import ids
from elearn_data.cluster.local import LocalCluster, NodeSpec
from elearn_data.database import Database
from elearn_data.errors import AbortedByRecovery, ConcurrencyConflict, Duplicate, DuplicateEmail
from elearn_data.regions import Region
from elearn_data.security import normalise_email
from elearn_data.sharding import twophase
from tests.integration.api.helpers import PASSWORD
from tests.integration.reliability.drills import (
    admin,
    assert_at_rest,
    insert_user_on,
    leftovers,
    present_user_ids,
)

pytestmark = pytest.mark.timeout(180)


CHILD = textwrap.dedent(
    """
    import os, sys, uuid
    from sqlalchemy import insert
    from elearn_data.config import Settings
    from elearn_data.database import Database
    from elearn_data.models import User
    from elearn_data.sharding import twophase

    db = Database(Settings(home=sys.argv[1], recover_on_connect=False, recover_interval_s=0))
    point = sys.argv[2]
    def die(gid):
        print(gid, flush=True)
        os._exit(9)
    setattr(twophase, point, die)
    # Built for europe, writing only north_america and asia rows.
    with db.writer("europe") as uow:
        for shard, region, uid in (("na", "north_america", sys.argv[3]),
                                   ("apac", "asia", sys.argv[4])):
            uow.execute(insert(User).values(
                id=uuid.UUID(uid), email=uid + "@example.org", password_hash="x",
                first_name="Crash", last_name="Drill", region=region, role="student"),
                shard=shard)
    """
)


# ------------------------------------------------------------------ helpers


def _exists(cluster: LocalCluster, shard: str, user_id: uuid.UUID) -> bool:
    return user_id in present_user_ids(cluster, shard, [user_id])


def _prepared(cluster: LocalCluster) -> dict[str, list[str]]:
    return {s: leftovers(cluster, s).prepared for s in cluster.state().shards}


def _assert_nothing_left(cluster: LocalCluster) -> None:
    assert_at_rest(cluster)


def _decision(cluster: LocalCluster, shard: str, gid: str) -> bool | None:
    conn = admin(cluster, cluster.state().primary_of(shard))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT committed FROM twophase_decisions WHERE gid = %s", (gid,))
            row = cur.fetchone()
            return None if row is None else bool(row[0])
    finally:
        conn.close()


def _terminate_app_backends(cluster: LocalCluster, shard: str) -> int:
    """Cut every application connection to the shard's primary (waiting until they are gone)."""
    conn = admin(cluster, cluster.state().primary_of(shard))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) "
                "FROM pg_stat_activity WHERE usename = 'elearn_app' AND pid <> pg_backend_pid()"
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _sync_waiter(cluster: LocalCluster, node: NodeSpec, timeout_s: float = 60) -> int:
    """Return the pid of the application backend whose COMMIT waits for a standby."""
    deadline = time.monotonic() + timeout_s
    conn = admin(cluster, node)
    try:
        with conn.cursor() as cur:
            while True:
                cur.execute(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE wait_event = 'SyncRep' AND usename = 'elearn_app'"
                )
                row = cur.fetchone()
                if row is not None:
                    return int(row[0])
                assert time.monotonic() < deadline, "no commit ever waited for the standby"
                time.sleep(0.02)
    finally:
        conn.close()


@contextmanager
def _commits_wait_for_a_missing_standby(
    cluster: LocalCluster, shard: str
) -> Iterator[Callable[[], None]]:
    """Make every commit on ``shard``'s primary wait for a standby that never comes.

    Yields ``release()``, which restores the setting (waiting commits then
    return); it also runs on exit. A commit whose backend is terminated while
    it waits has committed locally: exactly an ambiguous commit.
    """
    node = cluster.state().primary_of(shard)
    conn = admin(cluster, node)
    with conn.cursor() as cur:
        cur.execute("SHOW synchronous_standby_names")
        before = cur.fetchone()[0]
    released = False

    def release() -> None:
        nonlocal released
        if released:
            return
        released = True
        with conn.cursor() as cur:
            if before:
                cur.execute("ALTER SYSTEM SET synchronous_standby_names = %s", (before,))
            else:
                cur.execute("ALTER SYSTEM RESET synchronous_standby_names")
            cur.execute("SELECT pg_reload_conf()")

    try:
        with conn.cursor() as cur:
            cur.execute("ALTER SYSTEM SET synchronous_standby_names = 'elearn_nobody'")
            cur.execute("SELECT pg_reload_conf()")
        _wait_until_commits_wait(cluster, node)
        yield release
    finally:
        release()
        conn.close()


def _wait_until_commits_wait(cluster: LocalCluster, node: NodeSpec, timeout_s: float = 30) -> None:
    """Repeat a probe commit until one waits for the standby (then cancel its wait).

    A commit waits only if its transaction wrote WAL, and neither
    ``statement_timeout`` nor anything but a cancel or a termination ends the
    wait: the probe is committed in a thread and cancelled from here.
    """
    deadline = time.monotonic() + timeout_s
    watcher = admin(cluster, node)
    try:
        while True:
            probe = admin(cluster, node)
            probe.autocommit = False
            pid = probe.get_backend_pid()
            with probe.cursor() as cur:
                cur.execute(
                    "UPDATE shard_meta SET value = value"
                    " WHERE key = (SELECT min(key) FROM shard_meta)"
                )
            committer = threading.Thread(target=probe.commit)
            committer.start()
            waited = False
            with watcher.cursor() as cur:
                while committer.is_alive() and time.monotonic() < deadline:
                    cur.execute("SELECT wait_event FROM pg_stat_activity WHERE pid = %s", (pid,))
                    row = cur.fetchone()
                    if row is not None and row[0] == "SyncRep":
                        cur.execute("SELECT pg_cancel_backend(%s)", (pid,))
                        waited = True
                        break
                    time.sleep(0.02)
            committer.join(timeout=30)
            probe.close()
            if waited:
                return
            assert time.monotonic() < deadline, "the primary never waited for its standby"
    finally:
        watcher.close()


def _email_away_from(db: Database, home: str) -> str:
    """Return a fresh email whose directory row lives on another shard than ``home``."""
    while True:
        email = f"edge.{uuid.uuid4().hex[:10]}@example.org"
        digest = db.users._emails.digest(normalise_email(email))
        if db.router.directory_shard(digest) != home:
            return email


# ----------------------------------------------------- the gid's coordinator


@pytest.mark.parametrize(
    ("point", "committed"), [("after_prepare", False), ("after_decision", True)]
)
def test_a_writer_that_never_touched_its_own_shard_names_the_real_coordinator_in_its_gid(
    clean: Database, cluster: LocalCluster, point: str, committed: bool
) -> None:
    na_user, apac_user = ids.new_id(Region.NORTH_AMERICA), ids.new_id(Region.ASIA)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(clean.settings.home),
            point,
            str(na_user),
            str(apac_user),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 9, proc.stderr
    gid = proc.stdout.strip()
    # The gid names europe, so europe holds the decision although nothing else
    # was written there; both written shards are its participants.
    assert twophase.coordinator_of(gid) == "eu"
    prepared = _prepared(cluster)
    assert prepared["na"] == [gid] and prepared["apac"] == [gid]
    assert _decision(cluster, "eu", gid) is (True if committed else None)

    report = clean.recover(grace_s=0)
    settled = report.committed if committed else report.rolled_back
    assert sorted(settled) == [("apac", gid), ("na", gid)]
    assert _exists(cluster, "na", na_user) is committed
    assert _exists(cluster, "apac", apac_user) is committed
    _assert_nothing_left(cluster)


# ------------------------------------------------ an unknown outcome is no abort


def test_a_decision_committed_while_its_connection_was_cut_is_committed_everywhere(
    clean: Database, cluster: LocalCluster
) -> None:
    made: dict[str, uuid.UUID] = {}
    outcome: dict[str, Any] = {}

    def write() -> None:
        try:
            with clean.writer("europe") as uow:
                made["eu"] = insert_user_on(uow, "eu")
                made["na"] = insert_user_on(uow, "na")
            outcome["returned"] = True
        except BaseException as exc:  # reported to the test thread
            outcome["error"] = exc

    with _commits_wait_for_a_missing_standby(cluster, "eu"):
        writer = threading.Thread(target=write)
        writer.start()
        # The coordinator's COMMIT is flushed locally and waits for the standby;
        # cutting its connection now commits it locally, and the client sees an error.
        pid = _sync_waiter(cluster, cluster.state().primary_of("eu"))
        conn = admin(cluster, cluster.state().primary_of("eu"))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
        finally:
            conn.close()
    writer.join(timeout=120)
    assert not writer.is_alive()
    assert outcome == {"returned": True}
    assert _exists(cluster, "eu", made["eu"]) and _exists(cluster, "na", made["na"])
    _assert_nothing_left(cluster)


def test_a_decision_that_fails_before_its_commit_rolls_every_shard_back(
    clean: Database, cluster: LocalCluster
) -> None:
    # The fence, the decision and the COMMIT go as one query string. Held by a
    # restore point (exclusively), the fence times out: the string stops before
    # its COMMIT, libpq reports the transaction aborted, and nothing is decided.
    impatient = Database(
        clean.settings.model_copy(
            update={"lock_timeout_ms": 300, "recover_on_connect": False, "recover_interval_s": 0.0}
        )
    )
    made: dict[str, uuid.UUID] = {}
    fence = admin(cluster, cluster.state().primary_of("eu"))
    try:
        with fence.cursor() as cur:
            cur.execute("SELECT count(*) FROM twophase_decisions")
            decisions = cur.fetchone()[0]
            cur.execute("SELECT pg_advisory_lock(%s)", (twophase.DECISION_FENCE_KEY,))
        with pytest.raises(ConcurrencyConflict), impatient.writer("europe") as uow:
            made["eu"] = insert_user_on(uow, "eu")
            made["na"] = insert_user_on(uow, "na")
        with fence.cursor() as cur:
            # Not even an abort claimed: the call knew nothing was decided.
            cur.execute("SELECT count(*) FROM twophase_decisions")
            assert cur.fetchone()[0] == decisions
    finally:
        fence.close()
        impatient.close()
    assert not _exists(cluster, "eu", made["eu"]) and not _exists(cluster, "na", made["na"])
    _assert_nothing_left(cluster)


def test_an_interrupt_after_the_decision_was_sent_leaves_participants_prepared_not_rolled_back(
    clean: Database, cluster: LocalCluster
) -> None:
    made: dict[str, uuid.UUID] = {}
    eu_primary = cluster.state().primary_of("eu")
    with _commits_wait_for_a_missing_standby(cluster, "eu") as release:

        def interrupt() -> None:
            _sync_waiter(cluster, eu_primary)
            # Delivered to the main thread as soon as its COMMIT returns.
            os.kill(os.getpid(), signal.SIGINT)
            release()

        interrupter = threading.Thread(target=interrupt)
        interrupter.start()
        with pytest.raises(KeyboardInterrupt), clean.writer("europe") as uow:
            made["eu"] = insert_user_on(uow, "eu")
            made["na"] = insert_user_on(uow, "na")
        interrupter.join(timeout=60)
    # The decision committed: the participant must still be there to commit.
    assert len(_prepared(cluster)["na"]) == 1
    report = clean.recover(grace_s=0)
    assert [shard for shard, _ in report.committed] == ["na"]
    assert _exists(cluster, "eu", made["eu"]) and _exists(cluster, "na", made["na"])
    _assert_nothing_left(cluster)


def test_an_interrupt_after_the_decision_is_known_never_rolls_back_a_participant(
    clean: Database, cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(gid: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(twophase, "after_decision", interrupt)
    made: dict[str, uuid.UUID] = {}
    with pytest.raises(KeyboardInterrupt), clean.writer("europe") as uow:
        made["eu"] = insert_user_on(uow, "eu")
        made["apac"] = insert_user_on(uow, "apac")
    monkeypatch.setattr(twophase, "after_decision", None)
    assert len(_prepared(cluster)["apac"]) == 1
    clean.recover(grace_s=0)
    assert _exists(cluster, "eu", made["eu"]) and _exists(cluster, "apac", made["apac"])
    _assert_nothing_left(cluster)


# ------------------------------------------- the caller finishes COMMIT PREPARED


def test_register_finishes_the_commit_of_a_participant_whose_connection_was_cut(
    clean: Database, cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = _email_away_from(clean, "eu")
    directory = clean.router.directory_shard(clean.users._emails.digest(normalise_email(email)))
    cuts: list[int] = []
    monkeypatch.setattr(
        twophase,
        "after_decision",
        lambda gid: cuts.append(_terminate_app_backends(cluster, directory)),
    )
    user_id = clean.users.register(
        email=email, password=PASSWORD, first_name="Cut", last_name="Off", region="europe"
    )
    monkeypatch.setattr(twophase, "after_decision", None)
    assert cuts and cuts[0] >= 1
    # Done means done: nothing prepared, and the same object reads the writes.
    _assert_nothing_left(cluster)
    found = clean.users.find_by_email(email)
    assert found is not None and found.id == user_id
    authenticated = clean.users.authenticate(email, PASSWORD)
    assert authenticated is not None and authenticated.id == user_id
    with pytest.raises(DuplicateEmail):
        clean.users.register(
            email=email, password=PASSWORD, first_name="Cut", last_name="Again", region="asia"
        )


# ------------------------------------------ a recoverer racing a live coordinator


def test_a_recoverer_that_aborts_a_live_transaction_gives_the_caller_a_retryable_abort(
    clean: Database, cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(twophase, "after_prepare", lambda gid: clean.recover(grace_s=0))
    made: dict[str, uuid.UUID] = {}
    with pytest.raises(AbortedByRecovery) as info, clean.writer("europe") as uow:
        made["eu"] = insert_user_on(uow, "eu")
        made["na"] = insert_user_on(uow, "na")
    monkeypatch.setattr(twophase, "after_prepare", None)
    assert isinstance(info.value, ConcurrencyConflict)
    assert not isinstance(info.value, Duplicate)
    assert "aborted by two-phase recovery" in str(info.value)
    assert not _exists(cluster, "eu", made["eu"]) and not _exists(cluster, "na", made["na"])
    _assert_nothing_left(cluster)


def test_register_aborted_by_a_recoverer_is_retried_and_succeeds(
    clean: Database, cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    raced: list[str] = []

    def recover_once(gid: str) -> None:
        if not raced:
            raced.append(gid)
            clean.recover(grace_s=0)

    monkeypatch.setattr(twophase, "after_prepare", recover_once)
    email = _email_away_from(clean, "eu")
    user_id = clean.users.register(
        email=email, password=PASSWORD, first_name="Raced", last_name="Twice", region="europe"
    )
    monkeypatch.setattr(twophase, "after_prepare", None)
    assert len(raced) == 1
    found = clean.users.find_by_email(email)
    assert found is not None and found.id == user_id
    _assert_nothing_left(cluster)


def test_elearn_recover_leaves_transactions_younger_than_the_librarys_grace_alone(
    clean: Database, cluster: LocalCluster
) -> None:
    gid = twophase.new_gid("eu")
    # Prepared by the application role, exactly as a live coordinator leaves it.
    raw = clean.cluster.engines.primary("na").engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute("SELECT 1")
            cur.execute("PREPARE TRANSACTION %s", (gid,))
        proc = subprocess.run(
            [sys.executable, "-m", "elearn_data.cli", "recover", "--json"],
            env={**os.environ, "ELEARN_HOME": str(cluster.home)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["rolled_back"] == [] and report["committed"] == []
        assert _prepared(cluster)["na"] == [gid]
    finally:
        raw.invalidate()
        conn = admin(cluster, cluster.state().primary_of("na"))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT gid FROM pg_prepared_xacts WHERE gid = %s", (gid,))
                if cur.fetchone() is not None:
                    cur.execute("ROLLBACK PREPARED %s", (gid,))
        finally:
            conn.close()
