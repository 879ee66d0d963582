"""A course's gradebook: one row per enrollment, merged over every shard.

Each shard answers for the enrollments it holds (``get_course_gradebook``, one
row per enrollment and published assessment); a learner's enrollment lives on
one shard only, so the gradebook is the union of the shards' rows, pivoted to
one row per enrollment. The assessments (catalog rows, the same on every
shard) are read once.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from elearn_data.analytics.fanout import ShardQuery

GRADEBOOK = text("SELECT * FROM get_course_gradebook(:course_id)")
COURSE_ASSESSMENTS = text(
    "SELECT id, title, required FROM assessments"
    " WHERE course_id = :course_id AND status = 'published' ORDER BY created_at, id"
)
COURSE_EXISTS = text("SELECT EXISTS (SELECT 1 FROM courses WHERE id = :course_id)")

LEADING_COLUMNS = (
    "enrollment_id",
    "user_id",
    "learner",
    "status",
    "completion",
    "passed",
    "attempts",
)


def shard_part(q: ShardQuery, course_id: uuid.UUID) -> dict[str, Any]:
    """Return one shard's answer: whether the course exists, its assessments, its rows."""
    exists = bool(q.scalar(COURSE_EXISTS, course_id=course_id))
    if not exists:
        return {"exists": False, "assessments": [], "rows": []}
    return {
        "exists": True,
        "assessments": q.rows(COURSE_ASSESSMENTS, course_id=course_id),
        "rows": q.rows(GRADEBOOK, course_id=course_id),
    }


def column_names(assessments: list[dict[str, Any]]) -> dict[uuid.UUID, str]:
    """Name each assessment's column by its title (a repeated title gets " (2)", ...)."""
    names: dict[uuid.UUID, str] = {}
    taken: set[str] = set(LEADING_COLUMNS)
    for assessment in assessments:
        base = str(assessment["title"])
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base} ({n})"
        taken.add(name)
        names[assessment["id"]] = name
    return names


def pivot(
    parts: list[dict[str, Any]], assessments: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[uuid.UUID, str]]:
    """Return one row per enrollment (sorted by learner name, then id) and the column names.

    ``passed`` is True when every published required assessment has a passed
    attempt (True for a course without any); a per-assessment column holds the
    best percent of the submitted attempts (None without any).
    """
    names = column_names(assessments)
    required = {a["id"] for a in assessments if a["required"]}
    rows: dict[uuid.UUID, dict[str, Any]] = {}
    passed_sets: dict[uuid.UUID, set[uuid.UUID]] = {}
    for part in parts:
        for raw in part["rows"]:
            eid = raw["enrollment_id"]
            row = rows.get(eid)
            if row is None:
                row = {
                    "enrollment_id": eid,
                    "user_id": raw["user_id"],
                    "learner": raw["learner"],
                    "status": raw["enrollment_status"],
                    "completion": Decimal(raw["progress_percent"]),
                    "passed": False,
                    "attempts": 0,
                    **dict.fromkeys(names.values()),
                }
                rows[eid] = row
                passed_sets[eid] = set()
            aid = raw["assessment_id"]
            if aid is None or aid not in names:
                continue
            row[names[aid]] = raw["best_percent"]
            row["attempts"] += int(raw["attempts"])
            if raw["passed"]:
                passed_sets[eid].add(aid)
    for eid, row in rows.items():
        row["passed"] = required <= passed_sets[eid]
    ordered = sorted(rows.values(), key=lambda r: (str(r["learner"]), str(r["enrollment_id"])))
    return ordered, names
