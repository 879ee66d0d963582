"""A small platform built through the public API in every region.

It has learners in all six regions enrolled across regions, partial and full
progress, a dropped enrollment, reviews whose per-shard averages differ (so an average of
averages would be wrong), and completed / failed / refunded / pending payments
in two currencies spread over several months (moved back in time by the
superuser, one of them across a UTC month boundary).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from tests.integration.analytics import truth
from tests.integration.api.helpers import register
from tests.support import truncate_all


@dataclass
class World:
    instructors: dict[str, uuid.UUID] = field(default_factory=dict)
    courses: dict[str, uuid.UUID] = field(default_factory=dict)
    lessons: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    learners: dict[str, uuid.UUID] = field(default_factory=dict)
    enrollments: dict[tuple[str, str], uuid.UUID] = field(default_factory=dict)
    purchases: dict[tuple[str, str], uuid.UUID] = field(default_factory=dict)


# learner -> courses they enroll in (learners are named by region: na1 lives in north_america)
ENROLL = {
    "na1": ("py", "sql"),
    "na2": ("py",),
    "sa1": ("ml", "sql"),
    "sa2": ("py",),
    "eu1": ("py", "ml"),
    "eu2": ("sql",),
    "af1": ("py",),
    "af2": ("ml", "sql"),
    "as1": ("py", "sql", "ml"),
    "as2": ("ml",),
    "oc1": ("sql",),
    "oc2": ("py",),
}
LEARNER_REGION = {
    "na": "north_america",
    "sa": "south_america",
    "eu": "europe",
    "af": "africa",
    "as": "asia",
    "oc": "oceania",
}
# (learner, course) -> lessons completed (py has 4 lessons, sql 2, ml 3)
PROGRESS = {
    ("na1", "py"): 4,
    ("na1", "sql"): 1,
    ("na2", "py"): 2,
    ("sa1", "ml"): 3,
    ("sa2", "py"): 1,
    ("eu1", "py"): 4,
    ("eu1", "ml"): 1,
    ("eu2", "sql"): 2,
    ("af1", "py"): 1,  # then dropped
    ("af2", "ml"): 2,
    ("as1", "py"): 3,
    ("as1", "sql"): 2,
    ("as1", "ml"): 3,
    ("oc2", "py"): 2,
}
DROPPED = (("af1", "py"),)
# py's reviews: eu shard 5, 5; na shard 2; apac shard 3, 5 -> 20 / 5 = 4.00, while
# the average of the shards' averages would be (5 + 2 + 4) / 3 = 3.67.
REVIEWS = {
    ("eu1", "py"): 5,
    ("af1", "py"): 5,
    ("eu1", "ml"): 4,
    ("na1", "py"): 2,
    ("as1", "py"): 3,
    ("oc2", "py"): 5,
    ("sa1", "ml"): 4,
    ("eu2", "sql"): 1,
}
# Payments: every live enrollment buys its course, then: failed / refunded / pending ones.
FAILED = (("na2", "py"), ("af2", "sql"))
REFUNDED = (("eu1", "ml"), ("as1", "sql"), ("na1", "sql"))
PENDING = (("oc1", "sql"),)
EUR = {("eu2", "sql"): Decimal("30.00")}
# Purchases whose completion the superuser moves back in time (UTC month in comments).
MOVED = {
    ("na1", "py"): "2026-08-15 10:00:00+00",  # August
    ("sa2", "py"): "2026-08-31 23:30:00-05",  # = 1 September 04:30 UTC
    ("eu1", "py"): "2026-09-10 12:00:00+00",  # September
    ("as1", "sql"): "2026-09-20 08:00:00+00",  # refunded later (its refund stays in November)
    ("eu2", "sql"): "2026-10-01 00:00:00+00",  # October, EUR
    ("eu1", "ml"): "2026-10-05 09:00:00+00",  # October; refund moved to October too
}


def build_world(db: Database, cluster: LocalCluster) -> World:
    world = World()
    for region, short in (("europe", "eu"), ("north_america", "na"), ("asia", "ap")):
        world.instructors[short] = register(db, region, role="instructor")
    specs = {
        "py": ("eu", 4, Decimal("40.00")),
        "sql": ("na", 2, Decimal("25.50")),
        "ml": ("ap", 3, Decimal("10.00")),
        "art": ("eu", 1, Decimal("15.00")),  # published, nobody enrolls
    }
    for name, (teacher, lessons, price) in specs.items():
        course_id = db.catalog.create_course(
            code=f"AN-{name.upper()}-{uuid.uuid4().hex[:6].upper()}",
            title=f"Analytics {name}",
            instructor_id=world.instructors[teacher],
            price=price,
        )
        module = db.catalog.add_module(course_id, title="Basics", order=1)
        world.lessons[name] = [
            db.catalog.add_lesson(module, title=f"{name} {i}", order=i, lesson_type="video")
            for i in range(1, lessons + 1)
        ]
        db.catalog.publish(course_id)
        world.courses[name] = course_id
    # A draft course: counted in `courses`, not in `published_courses`.
    world.courses["draft"] = db.catalog.create_course(
        code=f"AN-DRAFT-{uuid.uuid4().hex[:6].upper()}",
        title="Analytics draft",
        instructor_id=world.instructors["na"],
    )

    for learner in ENROLL:
        world.learners[learner] = register(db, LEARNER_REGION[learner[:2]])
    for learner, courses in ENROLL.items():
        for course in courses:
            enrollment = db.enrollments.enroll(world.learners[learner], world.courses[course])
            world.enrollments[learner, course] = enrollment
            for lesson in world.lessons[course][: PROGRESS.get((learner, course), 0)]:
                db.enrollments.complete_lesson(enrollment, lesson, time_spent_minutes=5)
    for key, stars in REVIEWS.items():
        db.reviews.add(world.enrollments[key], stars)
    for key in DROPPED:
        db.enrollments.drop(world.enrollments[key])

    for key in world.enrollments:
        if key in DROPPED:
            continue
        learner, course = key
        amount = EUR.get(key)
        tx = db.payments.create_transaction(
            world.learners[learner],
            world.courses[course],
            amount=amount,
            currency="EUR" if amount else "USD",
        )
        world.purchases[key] = tx
        if key in FAILED:
            db.payments.fail(tx)
        elif key not in PENDING:
            db.payments.complete(tx, gateway_transaction_id=f"gw-{uuid.uuid4().hex}")
    refunds = {key: db.payments.refund(world.purchases[key]) for key in REFUNDED}

    for key, moment in MOVED.items():
        shard = db.router.shard_of_owner(world.learners[key[0]])
        truth.superuser(
            cluster,
            shard,
            "UPDATE transactions SET created_at = %s::timestamptz - interval '1 hour',"
            " completed_at = %s::timestamptz WHERE id = %s",
            moment,
            moment,
            str(world.purchases[key]),
        )
    eu_ml_refund_shard = db.router.shard_of_owner(world.learners["eu1"])
    truth.superuser(
        cluster,
        eu_ml_refund_shard,
        "UPDATE transactions SET created_at = '2026-10-20 10:00+00',"
        " completed_at = '2026-10-20 10:00+00' WHERE id = %s",
        str(refunds["eu1", "ml"]),
    )
    truth.sync_replicas(db, cluster)
    return world


_built: dict[str, tuple[World, object]] = {}


def _fingerprint(cluster: LocalCluster) -> object:
    raw = truth.read_raw(cluster)
    return sorted(
        (shard, table, tuple(sorted(str(row.get("id", row.get("enrollment_id"))) for row in rows)))
        for shard, tables in raw.shards.items()
        for table, rows in tables.items()
    )


def ensure_world(db: Database, cluster: LocalCluster) -> World:
    """Return the world, building it only when the cluster no longer holds exactly it.

    Other tests empty the cluster (the ``clean`` fixture) or write their own rows;
    the fingerprint (every row id of every table on every shard) notices both.
    """
    key = str(cluster.home)
    cached = _built.get(key)
    if cached is not None and _fingerprint(cluster) == cached[1]:
        return cached[0]
    truncate_all(cluster)
    db.content_store.clear()
    world = build_world(db, cluster)
    _built[key] = (world, _fingerprint(cluster))
    return world
