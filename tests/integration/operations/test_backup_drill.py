"""Backup drill: a restore point under cross-region load restores every shard to one cut.

On a dedicated cluster: load, full backup, cross-region enrollments (two-phase
commits) running while the restore point is taken -- with one transaction held
between PREPARE and its decision and one held between its decision and COMMIT
PREPARED across the point --, more load after it, then a restore of the point
into a new folder. The restored cluster must hold every commit acknowledged
before the point, nothing begun after it, no prepared transaction, seats equal
to live enrollments, directory and users in step, and one catalog.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from elearn_data.cluster.backup import Backups
from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings
from elearn_data.database import Database
from elearn_data.errors import CourseFull, ElearnDataError, InvalidInput, NotFound
from elearn_data.models import Enrollment
from elearn_data.monitoring.invariants import check_invariants
from elearn_data.sharding import twophase
from tests.integration.api.helpers import published_course, register
from tests.support import drill_settings, make_home

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

LEARNER_REGIONS = ("north_america", "asia", "south_america", "oceania")


@dataclass
class Op:
    """One enrollment attempt: when it started and when it was acknowledged."""

    user: uuid.UUID
    started: float
    acked: float | None = None
    enrollment: uuid.UUID | None = None


@pytest.fixture(scope="module")
def backed_up(drill_cluster: LocalCluster) -> Iterator[tuple[LocalCluster, Database]]:
    db = Database(drill_settings(drill_cluster.home, recover_interval_s=0))
    try:
        yield drill_cluster, db
    finally:
        db.close()


def _hold(point: str, release: threading.Event, held: threading.Event) -> None:
    """Make the next two-phase commit of the calling thread wait at ``point``."""
    me = threading.get_ident()

    def wait(_gid: str) -> None:
        if threading.get_ident() == me:
            held.set()
            release.wait(60)

    setattr(twophase, point, wait)


def test_a_restore_point_under_load_restores_one_consistent_cut(
    backed_up: tuple[LocalCluster, Database],
) -> None:
    cluster, db = backed_up
    # Load before the backup: capped courses whose seat ledgers live in europe, so
    # every enrollment of a learner from another region is a two-phase commit. The
    # held transactions get courses of their own: a prepared transaction keeps its
    # seat-ledger row locked.
    course, _ = published_course(db, instructor_region="europe", max_enrollments=400)
    held_courses = {
        name: published_course(db, instructor_region="africa", max_enrollments=5)[0]
        for name in ("prepare", "decision")
    }
    learners = [register(db, LEARNER_REGIONS[i % 4]) for i in range(120)]
    before_backup = [db.enrollments.enroll(u, course) for u in learners[:20]]

    backups = Backups(cluster)
    backups.init()
    # init restarted every node (archive_mode): drop the pooled connections it broke.
    db.cluster.engines.dispose()
    backups.backup("full")
    more = [db.enrollments.enroll(u, course) for u in learners[110:115]]
    # The restore below starts from this incremental backup (the newest before the point).
    incremental = backups.backup("incr")
    assert {b.kind for b in incremental} == {"incr"}
    before_backup += more

    # One transaction held before its decision, one after it, across the point.
    undecided_user, decided_user = learners[20], learners[21]
    outcome: dict[str, uuid.UUID | ElearnDataError] = {}
    gates = {name: (threading.Event(), threading.Event()) for name in ("prepare", "decision")}

    def held_enroll(name: str, point: str, user: uuid.UUID) -> None:
        release, held = gates[name]
        _hold(point, release, held)
        try:
            outcome[name] = db.enrollments.enroll(user, held_courses[name])
        except ElearnDataError as exc:
            outcome[name] = exc

    holders = [
        threading.Thread(target=held_enroll, args=("prepare", "after_prepare", undecided_user)),
        threading.Thread(target=held_enroll, args=("decision", "after_decision", decided_user)),
    ]
    for t in holders:
        t.start()
    for _release, held in gates.values():
        assert held.wait(30)

    # Cross-region enrollments race the restore point.
    ops: list[Op] = []
    lock = threading.Lock()
    stop = threading.Event()
    queue = iter(learners[22:100])

    def enroller() -> None:
        while not stop.is_set():
            with lock:
                user = next(queue, None)
            if user is None:
                return
            op = Op(user, time.monotonic())
            try:
                op.enrollment = db.enrollments.enroll(user, course)
                op.acked = time.monotonic()
            except CourseFull:  # pragma: no cover - capacity is ample
                pass
            with lock:
                ops.append(op)

    workers = [threading.Thread(target=enroller) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(0.5)
    point_started = time.monotonic()
    point = backups.restore_point("drill")
    point_ended = time.monotonic()
    for _name, (release, _held) in gates.items():
        release.set()
    for t in holders:
        t.join(60)
    twophase.after_prepare = None
    twophase.after_decision = None
    time.sleep(0.3)
    stop.set()
    for w in workers:
        w.join(60)

    # More load after the point: none of it may exist after the restore.
    after = [db.enrollments.enroll(u, course) for u in learners[100:110]]
    late_user = register(db, "europe")

    assert isinstance(outcome["prepare"], uuid.UUID), outcome["prepare"]
    assert isinstance(outcome["decision"], uuid.UUID), outcome["decision"]
    assert set(point.lsns) == set(db.router.shards)

    into = make_home("elearn-restored-")
    shutil.rmtree(into)
    try:
        report = backups.restore(into, point="drill")
        assert report.ok, report.violations
        assert set(report.backups.values()) <= {b.label for b in incremental}
        # The decided transaction is committed from its decision record; the
        # undecided one (its decision came after the point) is rolled back.
        assert report.committed >= 1
        assert report.rolled_back >= 1

        restored = Database(Settings(home=into, recover_on_connect=False, recover_interval_s=0))
        try:
            assert check_invariants(restored) == []
            present = _enrollments(restored)
            must_exist = set(before_backup) | {
                op.enrollment for op in ops if op.acked is not None and op.acked < point_started
            }
            must_exist.add(outcome["decision"])  # type: ignore[arg-type]
            must_not_exist = set(after) | {
                op.enrollment for op in ops if op.enrollment and op.started > point_ended
            }
            must_not_exist.add(outcome["prepare"])  # type: ignore[arg-type]
            assert must_exist <= present, must_exist - present
            assert not (must_not_exist & present), must_not_exist & present
            assert restored.users.find_by_email("nobody@example.org") is None
            with pytest.raises(NotFound):
                restored.users.get(late_user)
        finally:
            restored.close()
    finally:
        LocalCluster(into).down(purge=True)
        shutil.rmtree(into, ignore_errors=True)


def _enrollments(db: Database) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for shard in db.router.shards:
        with db.cluster.engines.primary(shard).engine.connect() as conn:
            found.update(conn.execute(select(Enrollment.id)).scalars())
    return found


def test_restore_refuses_an_unknown_point_and_a_used_folder(
    backed_up: tuple[LocalCluster, Database],
) -> None:
    cluster, _db = backed_up
    backups = Backups(cluster)
    if not backups.initialized:
        backups.init()
    target = make_home("elearn-restored-")
    try:
        with pytest.raises(NotFound):
            backups.restore(target / "new", point="no-such-point")
        with pytest.raises(InvalidInput):
            backups.restore(cluster.home, point="drill")
        with pytest.raises(InvalidInput):
            backups.restore(target / "new")
        with pytest.raises(InvalidInput):
            backups.restore_point("bad name; drop table users")
    finally:
        shutil.rmtree(target, ignore_errors=True)
