"""The independent truth: every raw row of every shard, read as the superuser, and figures
computed from them in plain Python.

Nothing here uses the platform's functions, triggers or partial aggregates
(``course_stats``, ``enrollments.progress_percent``): progress comes from the
``lesson_progress`` rows themselves, ratings from the review rows, revenue from
the transaction rows.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg2.extras

from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.sharding.consistency import CausalToken

TABLES = (
    "users",
    "courses",
    "course_lessons",
    "enrollments",
    "lesson_progress",
    "course_reviews",
    "transactions",
)

Row = dict[str, Any]


@dataclass
class Raw:
    """Every row of the tables above, per shard (primaries: the source of truth)."""

    shards: dict[str, dict[str, list[Row]]]

    def all(self, table: str) -> list[Row]:
        return [row for tables in self.shards.values() for row in tables[table]]

    def catalog(self, table: str) -> list[Row]:
        """Catalog rows (the same on every shard: asserted)."""
        copies = [sorted(tables[table], key=lambda r: r["id"]) for tables in self.shards.values()]
        ids = [[r["id"] for r in copy] for copy in copies]
        assert all(i == ids[0] for i in ids), f"{table} differs between shards"
        return copies[0]


def read_raw(cluster: LocalCluster) -> Raw:
    state = cluster.state()
    shards: dict[str, dict[str, list[Row]]] = {}
    for shard in state.shards:
        conn = cluster.admin_connect(state.primary_of(shard), dbname="elearn")
        try:
            psycopg2.extras.register_uuid(conn_or_curs=conn)
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                shards[shard] = {}
                for table in TABLES:
                    cur.execute(f"SELECT * FROM {table}")
                    shards[shard][table] = [dict(r) for r in cur.fetchall()]
        finally:
            conn.close()
    return Raw(shards)


def sync_replicas(db: Database, cluster: LocalCluster) -> None:
    """Make ``db``'s readers wait for what the superuser wrote behind its back."""
    state = cluster.state()
    lsns: dict[str, int] = {}
    for shard in state.shards:
        conn = cluster.admin_connect(state.primary_of(shard), dbname="elearn")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
                lsns[shard] = int(cur.fetchone()[0])
        finally:
            conn.close()
    db.observe(CausalToken(lsns))


def superuser(cluster: LocalCluster, shard: str, sql: str, *params: Any) -> None:
    conn = cluster.admin_connect(cluster.state().primary_of(shard), dbname="elearn")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql, params)
    finally:
        conn.close()


# ------------------------------------------------------------------- figures


def _revenue(transactions: list[Row]) -> Decimal:
    total = Decimal(0)
    for t in transactions:
        if t["type"] == "purchase" and t["status"] in {"completed", "refunded"}:
            total += t["amount"]
        elif t["type"] == "refund" and t["status"] == "completed":
            total -= t["amount"]
    return total


def platform(raw: Raw) -> dict[str, dict[str, Any]]:
    """{shard or 'all': figures}."""
    result: dict[str, dict[str, Any]] = {}
    for shard, t in raw.shards.items():
        result[shard] = {
            "users": len(t["users"]),
            "students": sum(u["role"] == "student" for u in t["users"]),
            "instructors": sum(u["role"] == "instructor" for u in t["users"]),
            "courses": len(t["courses"]),
            "published_courses": sum(c["status"] == "published" for c in t["courses"]),
            "enrollments": len(t["enrollments"]),
            "active_enrollments": sum(e["status"] == "active" for e in t["enrollments"]),
            "completed_enrollments": sum(e["status"] == "completed" for e in t["enrollments"]),
            "revenue": _revenue(t["transactions"]),
        }
    courses = raw.catalog("courses")
    learner_owned = [
        k for k in result[next(iter(result))] if k not in {"courses", "published_courses"}
    ]
    result["all"] = {k: sum(r[k] for r in result.values()) for k in learner_owned}
    result["all"]["courses"] = len(courses)
    result["all"]["published_courses"] = sum(c["status"] == "published" for c in courses)
    return result


def rating(total: int, count: int) -> Decimal | None:
    if not count:
        return None
    return (Decimal(total) / Decimal(count)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def instructor(raw: Raw, instructor_id: uuid.UUID) -> dict[str, Any]:
    taught = {c["id"] for c in raw.catalog("courses") if c["instructor_id"] == instructor_id}
    enrollments = [e for e in raw.all("enrollments") if e["course_id"] in taught]
    reviews = [r for r in raw.all("course_reviews") if r["course_id"] in taught]
    rating_sum = sum(r["rating"] for r in reviews)
    return {
        "instructor_id": instructor_id,
        "courses": len(taught),
        "enrollments": sum(e["status"] != "dropped" for e in enrollments),
        "active_students": len({e["user_id"] for e in enrollments if e["status"] == "active"}),
        "rating_sum": rating_sum,
        "rating_count": len(reviews),
        "average_rating": rating(rating_sum, len(reviews)),
        "revenue": _revenue([t for t in raw.all("transactions") if t["course_id"] in taught]),
    }


def popular(raw: Raw, limit: int) -> list[dict[str, Any]]:
    live = Counter(e["course_id"] for e in raw.all("enrollments") if e["status"] != "dropped")
    reviews: dict[uuid.UUID, list[int]] = defaultdict(list)
    for r in raw.all("course_reviews"):
        reviews[r["course_id"]].append(r["rating"])
    published = [c for c in raw.catalog("courses") if c["status"] == "published"]
    ranked = sorted(published, key=lambda c: (-live[c["id"]], c["id"]))[:limit]
    return [
        {
            "rank": i,
            "course_id": c["id"],
            "code": c["code"],
            "title": c["title"],
            "instructor_id": c["instructor_id"],
            "enrollments": live[c["id"]],
            "rating_sum": sum(reviews[c["id"]]),
            "rating_count": len(reviews[c["id"]]),
            "average_rating": rating(sum(reviews[c["id"]]), len(reviews[c["id"]])),
        }
        for i, c in enumerate(ranked, start=1)
    ]


def _utc_month(moment: datetime) -> date:
    utc = moment.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def revenue_by_month(
    raw: Raw, start: date | None = None, end: date | None = None
) -> list[dict[str, Any]]:
    buckets: dict[tuple[date, str], dict[str, Any]] = {}
    for t in raw.all("transactions"):
        counted = (t["type"] == "purchase" and t["status"] in {"completed", "refunded"}) or (
            t["type"] == "refund" and t["status"] == "completed"
        )
        if not counted:
            continue
        day = t["completed_at"].astimezone(UTC).date()
        if (start is not None and day < start) or (end is not None and day > end):
            continue
        slot = buckets.setdefault(
            (_utc_month(t["completed_at"]), t["currency"]),
            {"purchases": Decimal(0), "refunds": Decimal(0), "transactions": 0},
        )
        slot["purchases" if t["type"] == "purchase" else "refunds"] += t["amount"]
        slot["transactions"] += 1
    return [
        {
            "month": month,
            "currency": currency,
            "purchases": s["purchases"],
            "refunds": s["refunds"],
            "revenue": s["purchases"] - s["refunds"],
            "transactions": s["transactions"],
        }
        for (month, currency), s in sorted(buckets.items())
    ]


def by_region(raw: Raw) -> dict[str, dict[str, int]]:
    region_of = {u["id"]: u["region"] for u in raw.all("users")}
    result: dict[str, dict[str, Any]] = {}
    for e in raw.all("enrollments"):
        slot = result.setdefault(
            region_of[e["user_id"]],
            {"enrollments": 0, "active": 0, "completed": 0, "dropped": 0, "learners": set()},
        )
        slot["enrollments"] += 1
        slot[e["status"]] += 1
        slot["learners"].add(e["user_id"])
    return {
        region: {**{k: v for k, v in s.items() if k != "learners"}, "learners": len(s["learners"])}
        for region, s in result.items()
    }


def funnel(raw: Raw, course_id: uuid.UUID) -> dict[str, int]:
    lessons = sum(lesson["course_id"] == course_id for lesson in raw.catalog("course_lessons"))
    done = Counter(p["enrollment_id"] for p in raw.all("lesson_progress") if p["completed"])
    reviewed = {r["enrollment_id"] for r in raw.all("course_reviews")}
    enrollments = [e for e in raw.all("enrollments") if e["course_id"] == course_id]
    return {
        "enrolled": len(enrollments),
        "started": sum(done[e["id"]] >= 1 for e in enrollments),
        "halfway": sum(done[e["id"]] * 2 >= lessons for e in enrollments),
        "completed": sum(e["status"] == "completed" for e in enrollments),
        "reviewed": sum(e["id"] in reviewed for e in enrollments),
    }


def wait_replicas_caught_up(cluster: LocalCluster, timeout: float = 10) -> None:
    """Wait until every replica has replayed its primary's current WAL (for other processes)."""
    state = cluster.state()
    for shard in state.shards:
        conn = cluster.admin_connect(state.primary_of(shard))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_current_wal_lsn()::text")
                target = cur.fetchone()[0]
        finally:
            conn.close()
        for replica in state.replicas_of(shard):
            conn = cluster.admin_connect(replica)
            try:
                deadline = time.monotonic() + timeout
                with conn.cursor() as cur:
                    while True:
                        cur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))
                        if cur.fetchone()[0]:
                            break
                        assert time.monotonic() < deadline, f"{replica.name} did not catch up"
                        time.sleep(0.01)
            finally:
                conn.close()
