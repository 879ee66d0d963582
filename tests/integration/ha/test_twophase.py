"""Two-phase commits across a Patroni failover.

An in-doubt transaction (its process died between PREPARE and COMMIT PREPARED)
survives the crash of a shard's leader: a prepared transaction and the decision
record are replicated like any commit, so recovery finds both on the new
primary (it connects through the multi-host primary URL). And a switchover in
the middle of cross-region enrollments leaves the seat ledger equal to the
enrollments.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import func, select

from elearn_data.cluster.ha import HACluster
from elearn_data.database import Database
from elearn_data.errors import AlreadyEnrolled, CourseFull, ElearnDataError
from elearn_data.models import CourseSeats, Enrollment
from elearn_data.sharding.merge import sum_over_shards
from tests.integration.api.helpers import published_course, register
from tests.integration.ha.drills import (
    DEADLINE_S,
    admin_query,
    leader_of,
    wait_member_streaming,
)
from tests.integration.reliability.test_twophase_recovery import crash

pytestmark = pytest.mark.timeout(400)


def prepared(ha: HACluster, shard: str) -> list[str]:
    rows = admin_query(ha, leader_of(ha, shard), "SELECT gid FROM pg_prepared_xacts ORDER BY gid")
    return [r[0] for r in rows]


def seats_taken(db: Database, course: uuid.UUID) -> int:
    home = db.router.home_shard_of(course)
    with db.writer(home) as uow:
        return int(
            uow.execute(
                select(CourseSeats.taken).where(CourseSeats.course_id == course), shard=home
            ).scalar_one()
        )


def live_enrollments(db: Database, course: uuid.UUID) -> int:
    stmt = select(func.count()).where(
        Enrollment.course_id == course, Enrollment.status != "dropped"
    )
    with db.writer() as uow:
        return int(sum_over_shards(uow, stmt))


def crash_leader(ha: HACluster, shard: str) -> str:
    """SIGKILL the shard leader's postmaster; return the old leader once it streams again."""
    old = leader_of(ha, shard)
    ha.kill_postmaster(old)
    deadline = time.monotonic() + DEADLINE_S
    while leader_of(ha, shard).name == old.name:
        assert time.monotonic() < deadline, f"{shard} did not fail over"
        time.sleep(0.1)
    wait_member_streaming(ha, shard, old.name)
    return old.name


@pytest.mark.parametrize(
    ("point", "failed_shard", "committed"),
    [
        # The decision is on the coordinator (the learner's shard, eu): fail it over.
        ("after_decision", "eu", True),
        # No decision yet; the prepared participant (the course's shard) fails over.
        ("after_prepare", "apac", False),
    ],
)
def test_an_in_doubt_enrollment_is_settled_after_a_failover(
    ha: HACluster, ready: Database, point: str, failed_shard: str, committed: bool
) -> None:
    db = ready
    course, _ = published_course(db, instructor_region="asia", max_enrollments=5)
    learner = register(db, "europe")
    gid = crash(db.settings, "enroll", point, learner, course)
    assert gid.startswith("elearn:eu:")
    assert gid in prepared(ha, "apac")

    old = crash_leader(ha, failed_shard)
    assert leader_of(ha, failed_shard).name != old
    # The prepared transaction is on the new apac leader (or was never moved).
    assert gid in prepared(ha, "apac")

    report = db.recover(grace_s=0)
    assert report.resolved >= 1 and report.unreachable == []
    assert gid not in prepared(ha, "apac")
    enrolled = [e.course_id for e in db.enrollments.for_user(learner)]
    assert enrolled == ([course] if committed else [])
    assert seats_taken(db, course) == (1 if committed else 0)


def test_a_switchover_during_cross_region_enrollments_keeps_seats_equal_to_enrollments(
    ha: HACluster, ready: Database
) -> None:
    db = ready
    course, _ = published_course(db, instructor_region="asia", max_enrollments=40)
    regions = ["europe", "north_america", "africa", "south_america", "oceania", "asia"]
    learners = [register(db, regions[i % len(regions)]) for i in range(60)]
    acknowledged: set[uuid.UUID] = set()
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    queue = list(learners)

    def enroller() -> None:
        while True:
            with lock:
                if not queue:
                    return
                learner = queue.pop()
            deadline = time.monotonic() + DEADLINE_S
            while True:
                try:
                    db.enrollments.enroll(learner, course)
                    kind = "ok"
                except AlreadyEnrolled:
                    kind = "ok"  # an earlier, ambiguous attempt committed
                except CourseFull:
                    kind = "full"
                except ElearnDataError as exc:
                    with lock:
                        outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
                    assert time.monotonic() < deadline, f"enrollment never succeeded: {exc}"
                    time.sleep(0.05)
                    continue
                with lock:
                    outcomes[kind] = outcomes.get(kind, 0) + 1
                    if kind == "ok":
                        acknowledged.add(learner)
                break
            time.sleep(0.02)

    threads = [threading.Thread(target=enroller, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    old = leader_of(ha, "apac").name
    new = ha.failover("apac")  # the seat ledger's shard switches over mid-run
    for thread in threads:
        thread.join(timeout=DEADLINE_S)
    assert not any(t.is_alive() for t in threads)
    print(f"\nswitchover {old} -> {new.name} during enrollments: {outcomes}")
    assert new.name != old
    assert outcomes["ok"] == len(acknowledged) == 40, outcomes

    db.recover(grace_s=0)  # anything a dropped connection left in doubt
    for shard in ha.state().shards:
        assert prepared(ha, shard) == []
    enrolled = {learner for learner in learners if db.enrollments.for_user(learner)}
    assert enrolled == acknowledged
    assert seats_taken(db, course) == live_enrollments(db, course) == 40
