"""The benchmark's own data: learners loaded with COPY, courses created through the API.

Everything here runs inside the scratch databases (:mod:`elearn_data.bench.scratch`)
and is not timed. Learners are inserted directly (COPY, per shard) because
registration's argon2 hash would dominate the set-up; the two courses used by
the enrollment benchmark are created, given a lesson and published through the
public API, exactly as an application would.
"""

from __future__ import annotations

import itertools
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg2
from psycopg2 import sql

from elearn_data import ids
from elearn_data.bench.copy import copy_rows
from elearn_data.config import Settings, with_user
from elearn_data.database import Database
from elearn_data.errors import ConfigurationError
from elearn_data.regions import Region
from elearn_data.seeding.scales import REGION_WEIGHTS, split_exact
from elearn_data.sharding.consistency import CURRENT_LSN_SQL, CausalToken, current_lsn
from elearn_data.sharding.unit_of_work import UnitOfWork

USER_COLUMNS = (
    "id",
    "email",
    "password_hash",
    "first_name",
    "last_name",
    "role",
    "region",
    "status",
)
PROFILE_COLUMNS = ("user_id", "country", "city", "language", "timezone")
# Not a valid argon2 hash: bench learners never log in.
NO_PASSWORD = "bench-no-login"  # noqa: S105 - a placeholder, not a secret
COUNTRIES: dict[Region, tuple[str, str, str]] = {
    Region.NORTH_AMERICA: ("Canada", "Toronto", "America/Toronto"),
    Region.SOUTH_AMERICA: ("Brazil", "Recife", "America/Recife"),
    Region.EUROPE: ("France", "Lyon", "Europe/Paris"),
    Region.AFRICA: ("Kenya", "Nairobi", "Africa/Nairobi"),
    Region.ASIA: ("Japan", "Osaka", "Asia/Tokyo"),
    Region.OCEANIA: ("Australia", "Perth", "Australia/Perth"),
}


def owner_connection(settings: Settings, shard: str) -> Any:
    """Return a psycopg2 connection to the shard's primary as the schema owner."""
    primary = settings.shards[shard].primary
    assert primary is not None
    owner_user, owner_password = settings.owner_credentials()
    password = owner_password if owner_password is not None else settings.shard_password(shard)
    conn = psycopg2.connect(
        with_user(primary, owner_user),
        password=password,
        connect_timeout=settings.connect_timeout_s,
        application_name="elearn-bench-copy",
    )
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = 0")
    conn.commit()
    return conn


class LearnerFactory:
    """Rows of learners that never collide (ids are new; emails carry a run tag and a counter)."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or secrets.token_hex(3)
        self._counter = itertools.count(1)

    def rows(
        self, region: Region, count: int
    ) -> tuple[list[uuid.UUID], list[tuple[object, ...]], list[tuple[object, ...]]]:
        """Return (ids, user rows, profile rows) of ``count`` new learners of ``region``."""
        country, city, timezone = COUNTRIES[region]
        user_ids: list[uuid.UUID] = []
        users: list[tuple[object, ...]] = []
        profiles: list[tuple[object, ...]] = []
        for _ in range(count):
            n = next(self._counter)
            uid = ids.new_id(region)
            user_ids.append(uid)
            users.append(
                (
                    uid,
                    f"bench-{self.tag}-{n}@bench.example.org",
                    NO_PASSWORD,
                    "Bench",
                    f"Learner {n}",
                    "student",
                    region.value,
                    "active",
                )
            )
            profiles.append((uid, country, city, "en", timezone))
        return user_ids, users, profiles


def load_learners(
    db: Database, factory: LearnerFactory, region: Region, count: int
) -> list[uuid.UUID]:
    """COPY ``count`` learners (with profiles) of ``region`` into its shard; return their ids."""
    user_ids, users, profiles = factory.rows(region, count)
    copy_into(db, db.router.shard_of_region(region), users, profiles)
    return user_ids


def copy_into(
    db: Database,
    shard: str,
    users: Sequence[Sequence[object]],
    profiles: Sequence[Sequence[object]],
) -> int:
    """COPY user and profile rows into one shard's primary in one transaction; return rows.

    The Database then holds the causal token of the load, so its readers see the rows.
    """
    engine = db.cluster.engines.primary(shard).engine
    with engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        total = copy_rows(raw, "users", USER_COLUMNS, users)
        total += copy_rows(raw, "user_profiles", PROFILE_COLUMNS, profiles)
    with engine.connect() as conn:
        db.observe(CausalToken({shard: current_lsn(conn)}))
    return total


def load_population(
    db: Database, factory: LearnerFactory, learners: int, *, batch: int = 50_000
) -> dict[str, int]:
    """COPY ``learners`` learners spread over the regions by the seeding weights.

    Streams in batches (memory stays bounded), then vacuums and analyzes the
    database as the schema owner and waits until every replica has replayed
    the load. Returns the learners loaded per shard.
    """
    per_shard: dict[str, int] = {}
    for region, count in split_exact(learners, REGION_WEIGHTS).items():
        shard = db.router.shard_of_region(region)
        for start in range(0, count, batch):
            _, users, profiles = factory.rows(region, min(batch, count - start))
            copy_into(db, shard, users, profiles)
            per_shard[shard] = per_shard.get(shard, 0) + len(users)
    for shard in db.router.shards:
        conn = owner_connection(db.settings, shard)
        try:
            # Every table, as autovacuum would have by the time anyone runs
            # analytics: a standby cannot set hint bits, so scans of pages not
            # yet all-visible pay a commit-log lookup per row there.
            _vacuum_and_observe(db, shard, conn)
        finally:
            conn.close()
    wait_for_replicas(db)
    return per_shard


def _vacuum_and_observe(db: Database, shard: str, conn: Any, table: str | None = None) -> None:
    """VACUUM (ANALYZE) ``table`` (default: every table) on the owner's ``conn``; observe the LSN.

    The Database then holds the shard's WAL position after the load, so its
    readers (and :func:`wait_for_replicas`) wait for a replica that replayed it.
    """
    conn.autocommit = True
    with conn.cursor() as cur:
        if table is None:
            cur.execute("VACUUM (ANALYZE)")
        else:
            cur.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
        cur.execute(CURRENT_LSN_SQL)
        row = cur.fetchone()
        assert row is not None
        db.observe(CausalToken({shard: int(row[0])}))


# A deterministic, skewed score per learner from its id (many ties low down,
# few at the top, as on a real leaderboard): 1 + 20000 * u**4 for u uniform in
# [0, 1) taken from the id's md5. The badge trigger is off for the load only
# (inside its transaction, so nothing else ever sees it off): it would award
# nothing to these learners and cost a function call per row.
_GIVE_POINTS = (
    "INSERT INTO learner_points (user_id, points)"
    " SELECT u.id, 1 + floor(20000 * power(('x' || substr(md5(u.id::text), 1, 8))::bit(32)::bigint"
    " / 4294967296.0, 4))::bigint"
    " FROM users u WHERE u.role = 'student'"
    " AND NOT EXISTS (SELECT 1 FROM learner_points p WHERE p.user_id = u.id)"
)


def learners_of(db: Database) -> dict[str, int]:
    """Return how many learners (role student) each shard's primary holds."""
    counts: dict[str, int] = {}
    for shard in db.router.shards:
        conn = owner_connection(db.settings, shard)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM users WHERE role = 'student'")
                row = cur.fetchone()
                assert row is not None
                counts[shard] = int(row[0])
        finally:
            conn.close()
    return counts


def give_points(db: Database) -> dict[str, int]:
    """Give every learner without a points summary one (see ``_GIVE_POINTS``); return counts.

    Set-based on each primary as the schema owner, then analyzed, and waited
    for on the replicas. Only the summary rows are written (what the all-time
    leaderboard reads), not ledger entries.
    """
    given: dict[str, int] = {}
    for shard in db.router.shards:
        conn = owner_connection(db.settings, shard)
        try:
            with conn.cursor() as cur:
                cur.execute("ALTER TABLE learner_points DISABLE TRIGGER trg_learner_points_badges")
                cur.execute(_GIVE_POINTS)
                given[shard] = cur.rowcount
                cur.execute("ALTER TABLE learner_points ENABLE TRIGGER trg_learner_points_badges")
            conn.commit()
            _vacuum_and_observe(db, shard, conn, "learner_points")
        finally:
            conn.close()
    wait_for_replicas(db)
    return given


def wait_for_replicas(db: Database, timeout_s: float = 120.0) -> None:
    """Wait until a reader of every shard is served by a replica holding this Database's writes.

    A reader waits only ``replica.causal_wait_s`` before it reads the primary
    instead; after a large load that would measure the primaries.
    """
    deadline = time.monotonic() + timeout_s
    for shard in db.router.shards:
        if not db.cluster.engines.replicas(shard):
            continue
        while True:
            with db.reader(shard) as uow:
                reason = _reason(uow, shard=shard)
            if reason.startswith("replica"):
                break
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"the replicas of shard {shard} did not catch up within {timeout_s:g} s"
                )
            time.sleep(0.05)


def _reason(uow: UnitOfWork, *, shard: str) -> str:
    uow.connection(shard)
    return uow.choices[shard].reason


@dataclass(frozen=True)
class EnrollmentCourses:
    """One course whose seat ledger is on the learners' shard, one on another shard."""

    local: uuid.UUID
    remote: uuid.UUID


def published_course(db: Database, region: Region, code: str) -> uuid.UUID:
    """Register an instructor of ``region`` and publish a one-lesson course with seats."""
    instructor = db.users.register(
        email=f"{code.lower()}-{secrets.token_hex(3)}@bench.example.org",
        password=secrets.token_urlsafe(12),
        first_name="Bench",
        last_name="Instructor",
        region=region.value,
        role="instructor",
    )
    # A capacity makes every enrollment take a seat on the course's home shard.
    course = db.catalog.create_course(
        code=code,
        title=f"Benchmark course {code}",
        instructor_id=instructor,
        price=Decimal("0"),
        max_enrollments=10_000_000,
    )
    module = db.catalog.add_module(course, title="Only module", order=1)
    db.catalog.add_lesson(module, title="Only lesson", order=1, lesson_type="reading")
    db.catalog.publish(course)
    return course


def enrollment_courses(db: Database, learners: Region, other: Region) -> EnrollmentCourses:
    """Create the two courses of the enrollment benchmark."""
    tag = secrets.token_hex(2).upper()
    return EnrollmentCourses(
        local=published_course(db, learners, f"BENCH-L-{tag}"),
        remote=published_course(db, other, f"BENCH-R-{tag}"),
    )
