"""A process killed between PREPARE and COMMIT of a cross-shard enrollment, and recovery."""

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

CHILD = textwrap.dedent(
    """
    import os, sys, uuid
    from elearn_data.config import Settings
    from elearn_data.database import Database
    from elearn_data.sharding import twophase

    settings = Settings(home=sys.argv[1], recover_on_connect=False)
    db = Database(settings)
    point = sys.argv[4]
    def die(gid):
        print(gid, flush=True)
        os._exit(9)
    setattr(twophase, point, die)
    db.enrollments.enroll(uuid.UUID(sys.argv[2]), uuid.UUID(sys.argv[3]))
    """
)


def _crash_enroll(settings: Settings, user: uuid.UUID, course: uuid.UUID, point: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(settings.home), str(user), str(course), point],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 9, proc.stderr
    return proc.stdout.strip()


def _prepared(cluster: LocalCluster, gid: str) -> list[str]:
    state = cluster.state()
    found = []
    for shard in state.shards:
        conn = cluster.admin_connect(state.primary_of(shard), dbname="elearn")
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_prepared_xacts WHERE gid = %s", (gid,))
            if cur.fetchone():
                found.append(shard)
        conn.close()
    return found


def _seats_taken(db: Database, course: uuid.UUID) -> int:
    home = db.router.home_shard_of(course)
    with db.writer(home) as uow:
        return int(
            uow.execute(
                text("SELECT taken FROM course_seats WHERE course_id = :c"),
                {"c": course},
                shard=home,
            ).scalar_one()
        )


@pytest.mark.parametrize(
    ("point", "outcome"),
    [("after_prepare", "rolled_back"), ("after_decision", "committed")],
)
def test_recovery_settles_a_killed_cross_shard_enrollment_without_leaks(
    clean: Database, cluster: LocalCluster, point: str, outcome: str
) -> None:
    # Course homed in asia (apac), learner in europe (eu): two shards.
    course, _ = published_course(clean, instructor_region="asia", max_enrollments=5)
    learner = register(clean, "europe")
    gid = _crash_enroll(clean.settings, learner, course, point)
    assert gid.startswith("elearn:eu:")
    assert _prepared(cluster, gid) == ["apac"]

    report = clean.recover(grace_s=0)
    assert _prepared(cluster, gid) == []
    settled = report.committed if outcome == "committed" else report.rolled_back
    assert ("apac", gid) in settled

    enrollments = clean.enrollments.for_user(learner)
    if outcome == "committed":
        assert len(enrollments) == 1 and _seats_taken(clean, course) == 1
    else:
        # No leaked seat, no orphan enrollment.
        assert enrollments == [] and _seats_taken(clean, course) == 0
    # The learner can (still) enroll normally afterwards, or is already enrolled.
    if outcome == "rolled_back":
        clean.enrollments.enroll(learner, course)
        assert _seats_taken(clean, course) == 1


def test_recovery_leaves_young_prepared_transactions_alone(
    clean: Database, cluster: LocalCluster
) -> None:
    course, _ = published_course(clean, instructor_region="asia", max_enrollments=5)
    learner = register(clean, "north_america")
    gid = _crash_enroll(clean.settings, learner, course, "after_prepare")
    assert clean.recover(grace_s=3600).resolved == 0
    assert _prepared(cluster, gid) == ["apac"]
    assert clean.recover(grace_s=0).rolled_back == [("apac", gid)]


def test_the_background_recoverer_settles_a_crashed_enrollment_without_being_asked(
    clean: Database, cluster: LocalCluster
) -> None:
    course, _ = published_course(clean, instructor_region="oceania", max_enrollments=1)
    learner = register(clean, "africa")
    gid = _crash_enroll(clean.settings, learner, course, "after_prepare")
    # The prepared seat reservation holds the ledger row: nobody else can enroll yet.
    watcher = Database(
        clean.settings.model_copy(
            update={"recover_on_connect": False, "recover_interval_s": 0.2, "twophase_grace_s": 0}
        )
    )
    try:
        deadline = time.monotonic() + 20
        while _prepared(cluster, gid):
            assert time.monotonic() < deadline, "the recoverer never settled the transaction"
            time.sleep(0.1)
    finally:
        watcher.close()
    assert _seats_taken(clean, course) == 0
    clean.enrollments.enroll(register(clean, "europe"), course)
    assert _seats_taken(clean, course) == 1
