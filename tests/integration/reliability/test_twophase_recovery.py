"""A process killed between PREPARE and COMMIT: recovery settles it and leaves nothing locked.

``tests/integration/api/test_enrollment_crash.py`` kills a cross-shard
enrollment after PREPARE and after the decision and checks that recovery
commits or rolls back according to the decision record, with no leaked seat.
This module adds what a crash must not leave behind once recovery ran: no
prepared transaction and no lock (a prepared transaction keeps its row locks
-- here the course's seat-ledger row -- until it is settled, blocking every
other enrollment in that course), on a two-shard enrollment and on a
three-shard catalog write; and it checks that a new ``connect()`` settles
in-doubt transactions by itself at start-up.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from sqlalchemy import text

from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings
from elearn_data.database import Database
from tests.integration.api.helpers import published_course, register
from tests.integration.reliability.drills import admin, assert_at_rest, leftovers

pytestmark = pytest.mark.timeout(120)

CHILD = textwrap.dedent(
    """
    import os, sys, uuid
    from elearn_data.config import Settings
    from elearn_data.database import Database
    from elearn_data.sharding import twophase

    db = Database(Settings(home=sys.argv[1], recover_on_connect=False))
    operation, point, first, second = sys.argv[2:6]
    def die(gid):
        print(gid, flush=True)
        os._exit(9)
    setattr(twophase, point, die)
    if operation == "enroll":
        db.enrollments.enroll(uuid.UUID(first), uuid.UUID(second))
    else:
        db.catalog.create_course(code=second, title="Crash course", instructor_id=uuid.UUID(first))
    """
)


def crash(settings: Settings, operation: str, point: str, first: object, second: object) -> str:
    """Run one call in a child process that dies at ``point``; return the gid it held."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(settings.home),
            operation,
            point,
            str(first),
            str(second),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 9, proc.stderr
    return proc.stdout.strip()


def prepared_on(cluster: LocalCluster, gid: str) -> list[str]:
    return sorted(s for s in cluster.state().shards if gid in leftovers(cluster, s).prepared)


def locks_held_by_prepared(cluster: LocalCluster) -> dict[str, int]:
    return {s: leftovers(cluster, s).prepared_locks for s in cluster.state().shards}


def assert_nothing_left(cluster: LocalCluster) -> None:
    assert_at_rest(cluster, "after recovery")


def seats_taken(db: Database, course: uuid.UUID) -> int:
    home = db.router.home_shard_of(course)
    with db.writer(home) as uow:
        return int(
            uow.execute(
                text("SELECT taken FROM course_seats WHERE course_id = :c"),
                {"c": course},
                shard=home,
            ).scalar_one()
        )


@pytest.mark.parametrize("point", ["after_prepare", "after_decision"])
def test_a_killed_enrollment_holds_the_seat_lock_until_recovery_then_nothing_is_left(
    clean: Database, cluster: LocalCluster, point: str
) -> None:
    course, _ = published_course(clean, instructor_region="asia", max_enrollments=5)
    learner = register(clean, "europe")
    gid = crash(clean.settings, "enroll", point, learner, course)
    assert prepared_on(cluster, gid) == ["apac"]
    # The prepared participant still holds its locks (the seat-ledger row among them).
    assert locks_held_by_prepared(cluster)["apac"] > 0

    report = clean.recover(grace_s=0)
    assert report.resolved == 1 and report.unreachable == []
    assert_nothing_left(cluster)

    # The seat row is free again: another learner enrolls at once.
    started = time.monotonic()
    clean.enrollments.enroll(register(clean, "north_america"), course)
    assert time.monotonic() - started < 2.0
    expected = 2 if point == "after_decision" else 1
    assert seats_taken(clean, course) == expected
    assert_nothing_left(cluster)


@pytest.mark.parametrize(
    ("point", "committed"), [("after_prepare", False), ("after_decision", True)]
)
def test_a_killed_three_shard_catalog_write_is_settled_on_every_shard(
    clean: Database, cluster: LocalCluster, point: str, committed: bool
) -> None:
    instructor = register(clean, "africa", role="instructor")  # home shard eu: coordinator
    code = f"CRASH-{uuid.uuid4().hex[:6].upper()}"
    gid = crash(clean.settings, "create_course", point, instructor, code)
    assert gid.startswith("elearn:eu:")
    assert prepared_on(cluster, gid) == ["apac", "na"]

    report = clean.recover(grace_s=0)
    settled = report.committed if committed else report.rolled_back
    assert sorted(settled) == [("apac", gid), ("na", gid)]
    assert_nothing_left(cluster)

    state = cluster.state()
    for shard in state.shards:
        conn = admin(cluster, state.primary_of(shard))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM courses WHERE code = %s", (code,))
                assert cur.fetchone()[0] == (1 if committed else 0), shard
        finally:
            conn.close()
    # The catalog is usable for that code afterwards (committed: it exists everywhere).
    if not committed:
        clean.catalog.create_course(code=code, title="Second try", instructor_id=instructor)


def test_a_new_connect_object_settles_in_doubt_transactions_at_start_up(
    clean: Database, cluster: LocalCluster
) -> None:
    course, _ = published_course(clean, instructor_region="asia", max_enrollments=5)
    learner = register(clean, "south_america")
    gid = crash(clean.settings, "enroll", "after_decision", learner, course)
    assert prepared_on(cluster, gid) == ["apac"]
    fresh = Database(clean.settings.model_copy(update={"twophase_grace_s": 0.0}))
    try:
        assert fresh.wait_idle()  # the start-up pass runs in the background
        assert prepared_on(cluster, gid) == []
        assert [e.course_id for e in fresh.enrollments.for_user(learner)] == [course]
    finally:
        fresh.close()
    assert_nothing_left(cluster)
