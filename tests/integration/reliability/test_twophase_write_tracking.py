"""Client-side write tracking in the two-phase commit (docs/reliability.md, "Two-phase commit").

A writer unit of work records the shards it knows it wrote on (Core
INSERT/UPDATE/DELETE, ORM flushes, statements marked with ``writing()``); the
commit PREPAREs those without asking the server whether they wrote. Every
other participant is still asked, so a shard written in a way the client
cannot see (an unmarked ``SELECT some_writing_function()``) is prepared and
committed atomically, and a participant that only read is committed plainly,
never left prepared.

The statements each shard's primary receives are observed with a
``before_cursor_execute`` listener on its engine (the connection event
counter of the benchmark's round-trip count).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text
from sqlalchemy.exc import DBAPIError

from elearn_data import ids
from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings
from elearn_data.database import Database
from elearn_data.errors import NotFound
from elearn_data.models import User
from elearn_data.regions import Region
from elearn_data.sharding import twophase
from elearn_data.sharding.unit_of_work import writes, writing
from tests.integration.api.helpers import published_course, register
from tests.integration.reliability.drills import (
    REGION_OF_SHARD,
    admin,
    assert_at_rest,
    insert_user_on,
    leftovers,
    present_user_ids,
)

pytestmark = pytest.mark.timeout(180)

CHECK = "pg_current_xact_id_if_assigned"
PREPARE = "PREPARE TRANSACTION"
# reserve_seat, unmarked: the client cannot know that it writes.
UNMARKED_RESERVE = text("SELECT reserve_seat(:course_id)")


@contextmanager
def statements(db: Database, *shards: str) -> Iterator[dict[str, list[str]]]:
    """Collect what each shard's primary is sent while the block runs.

    Every statement as SQLAlchemy sends it: the transaction's own ``BEGIN``,
    ``PREPARE TRANSACTION`` and ``COMMIT [PREPARED]`` are statements too
    (``twophase.ServerTransaction``).
    """
    seen: dict[str, list[str]] = {shard: [] for shard in shards}
    listeners: list[tuple[Any, Any]] = []
    for shard in shards:
        sent = seen[shard]

        def statement(conn: Any, cursor: Any, text: str, *_: Any, sent: list[str] = sent) -> None:
            sent.append(text)

        engine = db.cluster.engines.primary(shard).engine
        event.listen(engine, "before_cursor_execute", statement)
        listeners.append((engine, statement))
    try:
        yield seen
    finally:
        for engine, fn in listeners:
            event.remove(engine, "before_cursor_execute", fn)


def _count(sent: list[str], fragment: str) -> int:
    return sum(fragment in statement for statement in sent)


def _seats_taken(cluster: LocalCluster, course: uuid.UUID, shard: str) -> int:
    conn = admin(cluster, cluster.state().primary_of(shard))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT taken FROM course_seats WHERE course_id = %s", (str(course),))
            row = cur.fetchone()
            return int(row[0])
    finally:
        conn.close()


def test_what_counts_as_a_known_write() -> None:
    assert writes(insert(User).values(id=uuid.uuid4()))
    assert writes(writing(text("SELECT reserve_seat(:c)")))
    assert not writes(UNMARKED_RESERVE)
    assert not writes(select(User.id))
    assert not writes("SELECT 1")


# --------------------------------------------------- known writes: no check


def test_a_cross_shard_enrollment_prepares_the_seat_ledger_without_asking(
    clean: Database, cluster: LocalCluster
) -> None:
    course, _ = published_course(clean, instructor_region="north_america", max_enrollments=5)
    learner = register(clean, "europe")
    with statements(clean, "eu", "na") as sent:
        clean.enrollments.enroll(learner, course)
    assert _count(sent["na"], "reserve_seat") == 1
    assert _count(sent["na"], CHECK) == 0
    assert _count(sent["na"], PREPARE) == 1
    assert _count(sent["na"], "COMMIT PREPARED") == 1
    # The decision fence and the decision travel together (one round trip).
    decisions = [s for s in sent["eu"] if "elearn_twophase_decide" in s]
    assert len(decisions) == 1 and "pg_advisory_xact_lock_shared" in decisions[0]
    assert _seats_taken(cluster, course, "na") == 1
    assert [e.user_id for e in clean.enrollments.for_user(learner)] == [learner]
    assert_at_rest(cluster)


def test_core_dml_on_a_participant_is_prepared_without_asking(
    clean: Database, cluster: LocalCluster
) -> None:
    with statements(clean, "na", "apac") as sent, clean.writer("europe") as uow:
        eu_user = insert_user_on(uow, "eu")
        na_user = insert_user_on(uow, "na")
        apac_user = insert_user_on(uow, "apac")
    for shard in ("na", "apac"):
        assert _count(sent[shard], CHECK) == 0, sent[shard]
        assert _count(sent[shard], PREPARE) == 1
    assert present_user_ids(cluster, "eu", [eu_user]) == {eu_user}
    assert present_user_ids(cluster, "na", [na_user]) == {na_user}
    assert present_user_ids(cluster, "apac", [apac_user]) == {apac_user}
    assert_at_rest(cluster)


def test_an_orm_flush_marks_the_shard_it_wrote_on(clean: Database, cluster: LocalCluster) -> None:
    with clean.writer() as probe:
        home = probe.default_shard  # a global writer's coordinator: the local shard
    other = next(shard for shard in ("na", "eu", "apac") if shard != home)
    orm_user = ids.new_id(REGION_OF_SHARD[other])
    with statements(clean, other) as sent, clean.writer() as uow:
        core_user = insert_user_on(uow, home)
        uow.session.add(
            User(
                id=orm_user,
                email=f"{orm_user.hex}@example.org",
                password_hash="x",
                first_name="Orm",
                last_name="Flush",
                region=REGION_OF_SHARD[other].value,
                role="student",
            )
        )
    assert _count(sent[other], "INSERT INTO users") == 1
    assert _count(sent[other], CHECK) == 0
    assert _count(sent[other], PREPARE) == 1
    assert present_user_ids(cluster, other, [orm_user]) == {orm_user}
    assert present_user_ids(cluster, home, [core_user]) == {core_user}
    assert_at_rest(cluster)


# ------------------------------------------------- unknown writes: asked


def test_a_participant_that_only_read_is_asked_and_not_left_prepared(
    clean: Database, cluster: LocalCluster
) -> None:
    with statements(clean, "na") as sent, clean.writer("europe") as uow:
        eu_user = insert_user_on(uow, "eu")
        uow.execute(select(User.id).limit(1), shard="na").all()
    assert _count(sent["na"], CHECK) == 1
    assert _count(sent["na"], PREPARE) == 0
    assert leftovers(cluster, "na").prepared == []
    assert present_user_ids(cluster, "eu", [eu_user]) == {eu_user}
    assert_at_rest(cluster)


def test_a_participant_written_only_by_an_unmarked_function_is_asked_and_prepared(
    clean: Database, cluster: LocalCluster
) -> None:
    course, _ = published_course(clean, instructor_region="north_america", max_enrollments=5)
    with statements(clean, "na") as sent, clean.writer("europe") as uow:
        eu_user = insert_user_on(uow, "eu")
        uow.execute(UNMARKED_RESERVE, {"course_id": course}, shard="na")
    assert _count(sent["na"], CHECK) == 1
    assert _count(sent["na"], PREPARE) == 1
    assert _seats_taken(cluster, course, "na") == 1
    assert present_user_ids(cluster, "eu", [eu_user]) == {eu_user}
    assert_at_rest(cluster)


def test_an_unmarked_function_write_is_rolled_back_with_the_rest_before_the_decision(
    clean: Database, cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    course, _ = published_course(clean, instructor_region="north_america", max_enrollments=5)
    seen: dict[str, list[str]] = {}

    def fail(gid: str) -> None:
        seen["prepared"] = leftovers(cluster, "na").prepared
        raise RuntimeError("injected before the decision")

    monkeypatch.setattr(twophase, "after_prepare", fail)
    made: list[uuid.UUID] = []
    with pytest.raises(RuntimeError, match="injected"), clean.writer("europe") as uow:
        made.append(insert_user_on(uow, "eu"))
        uow.execute(UNMARKED_RESERVE, {"course_id": course}, shard="na")
    assert len(seen["prepared"]) == 1  # the function's write was prepared, not committed
    assert _seats_taken(cluster, course, "na") == 0
    assert present_user_ids(cluster, "eu", made) == set()
    assert_at_rest(cluster)


def test_a_known_written_participant_whose_transaction_failed_aborts_the_commit(
    clean: Database, cluster: LocalCluster
) -> None:
    """PREPARE of a failed transaction would roll it back silently: the check runs instead."""
    made: list[uuid.UUID] = []
    with pytest.raises(DBAPIError) as failed, clean.writer("europe") as uow:
        made.append(insert_user_on(uow, "eu"))
        made.append(insert_user_on(uow, "na"))
        with pytest.raises(NotFound):
            # A failing writing call on the participant, swallowed by the caller.
            uow.execute(writing(text("SELECT reserve_seat(:c)")), {"c": uuid.uuid4()}, shard="na")
    # The server's check ran and refused the failed transaction: nothing was decided.
    assert getattr(failed.value.orig, "pgcode", None) == "25P02"
    assert present_user_ids(cluster, "eu", made) == set()
    assert present_user_ids(cluster, "na", made) == set()
    assert_at_rest(cluster)


# ------------------------------------------------------------- crash drill

CHILD = textwrap.dedent(
    """
    import os, sys, uuid
    from sqlalchemy import insert, text
    from elearn_data.config import Settings
    from elearn_data.database import Database
    from elearn_data.models import User
    from elearn_data.sharding import twophase

    db = Database(Settings(home=sys.argv[1], recover_on_connect=False, recover_interval_s=0))
    def die(gid):
        print(gid, flush=True)
        os._exit(9)
    setattr(twophase, sys.argv[2], die)
    user = uuid.UUID(sys.argv[3])
    with db.writer("europe") as uow:
        uow.execute(insert(User).values(
            id=user, email=user.hex + "@example.org", password_hash="x",
            first_name="Crash", last_name="Drill", region="europe", role="student"), shard="eu")
        # Unmarked: the seat is written by a function call the client cannot see.
        uow.execute(text("SELECT reserve_seat(:c)"), {"c": uuid.UUID(sys.argv[4])}, shard="na")
    """
)


@pytest.mark.parametrize(
    ("point", "committed"), [("after_prepare", False), ("after_decision", True)]
)
def test_a_function_only_participant_killed_mid_commit_is_settled_atomically(
    clean: Database, cluster: LocalCluster, settings: Settings, point: str, committed: bool
) -> None:
    course, _ = published_course(clean, instructor_region="north_america", max_enrollments=5)
    user = ids.new_id(Region.EUROPE)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(settings.home), point, str(user), str(course)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 9, proc.stderr
    gid = proc.stdout.strip()
    assert leftovers(cluster, "na").prepared == [gid]
    report = clean.recover(grace_s=0)
    settled = report.committed if committed else report.rolled_back
    assert settled == [("na", gid)]
    assert _seats_taken(cluster, course, "na") == (1 if committed else 0)
    assert present_user_ids(cluster, "eu", [user]) == ({user} if committed else set())
    assert_at_rest(cluster)
