"""The enrollments, progress and reviews phases (learner-owned rows, on the learner's shard).

Enrollments: learners pick published (or since archived) courses by a skewed
popularity (a few courses are very popular, courses from the learner's own
region a little more so), never the same course twice, and never beyond a
capacity-bound course's seats: each region fills at most its share of a
course's capacity (:func:`elearn_data.seeding.catalog._quotas`), so the global
count never exceeds it.

Progress is sequential, as learners work through a course: an enrollment that
completed ``k`` lessons has progress rows for its first ``k`` lessons
(completed) and possibly one started lesson. ``completed_lessons``,
``progress_percent`` (``round(k * 100 / lesson_count, 2)``, half away from
zero, as PostgreSQL's ``round`` does), ``status`` and ``completed_at`` are
derived from those rows, consistent by construction; the loader verifies them
with set-based SQL before it commits.

Reviews are skewed positive and written only for enrollments that got
somewhere (the API refuses a review of a dropped enrollment).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import numpy as np

from elearn_data.regions import Region
from elearn_data.seeding import columns as col
from elearn_data.seeding.catalog import _ranks
from elearn_data.seeding.fakes import REVIEW_TEXTS, copy_escape
from elearn_data.seeding.plan import (
    ACTIVE,
    COMPLETED,
    DAY_MS,
    DROPPED,
    HOUR_MS,
    MINUTE_MS,
    STATUS_NAMES,
    WORLD_NOW_MS,
    Batch,
    Enrollments,
    World,
)
from elearn_data.seeding.scales import split_exact

ENROLLMENT_COLUMNS: Final = (
    "id",
    "user_id",
    "course_id",
    "status",
    "progress_percent",
    "completed_lessons",
    "enrolled_at",
    "completed_at",
    "dropped_at",
    "certificate_url",
    "certificate_issued_at",
    "updated_at",
)
PROGRESS_COLUMNS: Final = (
    "enrollment_id",
    "lesson_id",
    "completed",
    "completed_at",
    "time_spent_minutes",
    "last_accessed_at",
    "created_at",
    "updated_at",
)
REVIEW_COLUMNS: Final = (
    "id",
    "enrollment_id",
    "user_id",
    "course_id",
    "rating",
    "review_text",
    "created_at",
    "updated_at",
)

# Rating probabilities (1..5): completed learners are the happiest.
RATINGS_COMPLETED: Final = np.array([0.02, 0.03, 0.10, 0.30, 0.55])
RATINGS_ACTIVE: Final = np.array([0.05, 0.07, 0.16, 0.34, 0.38])

_REDRAW_ROUNDS: Final = 60


def enrollment_counts(world: World) -> dict[Region, int]:
    """Return each region's share of the scale's enrollments (proportional to its students)."""
    students = {r: float(len(world.users[r].students)) for r in world.regions}
    return split_exact(world.scale.enrollments, students)


def _popularity(world: World) -> np.ndarray:
    """Return each course's base popularity (Zipf-like over a seeded ranking; 0 if closed)."""
    catalog = world.must_catalog()
    n = len(catalog.capacity)
    rank = world.rng("popularity").permutation(n)
    weight = 1.0 / (rank + 1.0) ** 0.8
    return np.where(catalog.enrollable, weight, 0.0)


def plan_enrollments(world: World, region: Region, total: int) -> Enrollments:
    """Draw one region's enrollments: who, which course, when, and how far they got."""
    catalog = world.must_catalog()
    users = world.users[region]
    rng = world.rng("enrollments", region)
    n_courses = len(catalog.capacity)
    students = users.students
    base = _popularity(world)
    home_boost = np.array([1.5 if h is region else 1.0 for h in catalog.home])
    weight = base * home_boost
    activity = rng.lognormal(0.0, 1.0, size=len(students))
    user = students[rng.choice(len(students), size=total, p=activity / activity.sum())]
    course = rng.choice(n_courses, size=total, p=weight / weight.sum())
    quota = catalog.quotas[region]
    capped = catalog.capacity > 0
    for round_number in range(_REDRAW_ROUNDS + 1):
        redo = _duplicates(user, course, n_courses) | _over_quota(course, quota, capped)
        if not redo.any():
            break
        if round_number == _REDRAW_ROUNDS:  # pragma: no cover - needs a learner in every course
            user[redo] = students[rng.integers(0, len(students), size=int(redo.sum()))]
            continue
        kept = np.bincount(course[~redo], minlength=n_courses)
        open_weight = np.where(capped & (kept >= quota), 0.0, weight)
        course[redo] = rng.choice(
            n_courses, size=int(redo.sum()), p=open_weight / open_weight.sum()
        )
    order = np.lexsort((course, user))
    user, course = user[order], course[order]

    lessons = catalog.lesson_count[course]
    earliest = np.maximum(users.created_ms[user], catalog.published_ms[course]) + HOUR_MS
    window = np.maximum(WORLD_NOW_MS - HOUR_MS - earliest, MINUTE_MS)
    enrolled = earliest + (window * rng.beta(1.0, 1.3, size=total)).astype(np.int64)
    draw = rng.random(total)
    status = np.where(draw < 0.10, COMPLETED, np.where(draw > 0.92, DROPPED, ACTIVE))
    status = np.where(lessons == 0, ACTIVE, status).astype(np.int8)
    active_done = np.floor(lessons * rng.beta(0.6, 2.4, size=total)).astype(np.int64)
    dropped_done = np.floor(lessons * rng.beta(0.5, 3.0, size=total)).astype(np.int64)
    done = np.where(
        status == COMPLETED,
        lessons,
        np.minimum(np.where(status == DROPPED, dropped_done, active_done), lessons - 1),
    )
    done = np.maximum(done, 0)
    started = rng.random(total)
    current = ((status == ACTIVE) & (started < 0.4)) | ((status == DROPPED) & (started < 0.25))
    current &= done < lessons
    span = (WORLD_NOW_MS - MINUTE_MS - enrolled) * rng.beta(2.0, 3.0, size=total)
    end = enrolled + np.maximum(span.astype(np.int64), 1)
    hi, lo = col.owned_ids(region, enrolled, rng)
    return Enrollments(
        hi=hi,
        lo=lo,
        user=user.astype(np.int32),
        course=course.astype(np.int32),
        status=status,
        done=done.astype(np.int16),
        current=current,
        enrolled_ms=enrolled,
        end_ms=end,
    )


def _duplicates(user: np.ndarray, course: np.ndarray, n_courses: int) -> np.ndarray:
    key = user.astype(np.int64) * n_courses + course
    order = np.argsort(key, kind="stable")
    repeated = np.zeros(len(key), dtype=bool)
    repeated[order[1:][key[order][1:] == key[order][:-1]]] = True
    result: np.ndarray = repeated
    return result


def _over_quota(course: np.ndarray, quota: np.ndarray, capped: np.ndarray) -> np.ndarray:
    order = np.argsort(course, kind="stable")
    rank = np.empty(len(course), dtype=np.int64)
    rank[order] = _ranks(course[order]) - 1
    over: np.ndarray = capped[course] & (rank >= quota[course])
    return over


def enrollment_batches(world: World) -> Iterator[Batch]:
    """Yield every region's enrollments (and plan them for the later phases)."""
    catalog = world.must_catalog()
    size = world.scale.batch_rows
    statuses = np.array([name.encode() for name in STATUS_NAMES.tolist()])
    for region, total in enrollment_counts(world).items():
        plan = plan_enrollments(world, region, total)
        world.enrollments[region] = plan
        users = world.users[region]
        rng = world.rng("enrollment-rows", region)
        shard = world.shard_of(region)
        for start in range(0, total, size):
            s = slice(start, min(start + size, total))
            n = s.stop - s.start
            status = plan.status[s]
            end = plan.end_ms[s]
            courses = plan.course[s]
            lessons = catalog.lesson_count[courses]
            done = plan.done[s].astype(np.int64)
            hundredths = (done * 20_000 + lessons) // np.maximum(2 * lessons, 1)
            completed = status == COMPLETED
            dropped = status == DROPPED
            dropped_at = end + np.minimum(DAY_MS, (WORLD_NOW_MS - end) // 2)
            certified = completed & (rng.random(n) < 0.6)
            issued = end + np.minimum(HOUR_MS, (WORLD_NOW_MS - end) // 2)
            updated = np.where(dropped, dropped_at, np.where(certified, issued, end))
            certificate = np.strings.add(
                b"https://certificates.example.com/",
                col.hex_ids(plan.hi[s], plan.lo[s]).astype("S32"),
            )
            yield Batch(
                shard,
                "enrollments",
                ENROLLMENT_COLUMNS,
                col.binary_rows(
                    [
                        col.Binary.uuid(plan.hi[s], plan.lo[s]),
                        col.Binary.uuid(users.hi[plan.user[s]], users.lo[plan.user[s]]),
                        col.Binary.uuid(catalog.course_hi[courses], catalog.course_lo[courses]),
                        col.Binary("text", statuses[status]),
                        col.Binary("numeric2", hundredths),
                        col.Binary("int4", done),
                        col.Binary("timestamptz", plan.enrolled_ms[s]),
                        col.Binary("timestamptz", end, completed),
                        col.Binary("timestamptz", dropped_at, dropped),
                        col.Binary("text", certificate, certified),
                        col.Binary("timestamptz", issued, certified),
                        col.Binary("timestamptz", updated),
                    ]
                ),
                n,
                advance=n,
                binary=True,
            )


def progress_batches(world: World) -> Iterator[Batch]:
    """Yield the lesson_progress rows of every enrollment (sequential progress)."""
    catalog = world.must_catalog()
    # Enrollments per batch such that a batch holds about batch_rows progress rows.
    step = max(1, world.scale.batch_rows // 3)
    for region in world.regions:
        plan = world.enrollments[region]
        rng = world.rng("progress", region)
        shard = world.shard_of(region)
        total = len(plan.hi)
        for start in range(0, total, step):
            s = slice(start, min(start + step, total))
            count = plan.done[s].astype(np.int64) + plan.current[s]
            rows = int(count.sum())
            if rows == 0:
                yield Batch(shard, "lesson_progress", PROGRESS_COLUMNS, b"", 0, s.stop - s.start)
                continue
            owner = np.repeat(np.arange(s.start, s.stop), count)
            position = _ranks(owner) - 1
            lesson = catalog.lesson_start[plan.course[owner]] + position
            completed = position < plan.done[owner]
            enrolled = plan.enrolled_ms[owner]
            touched = (
                enrolled
                + (plan.end_ms[owner] - enrolled) * (position + 1) // count[owner - s.start]
            )
            effort = np.where(completed, 0.6 + rng.random(rows), 0.1 + rng.random(rows) * 0.5)
            minutes = np.maximum(1, (catalog.lesson_minutes[lesson] * effort).astype(np.int64))
            began = np.maximum(enrolled, touched - minutes * MINUTE_MS)
            yield Batch(
                shard,
                "lesson_progress",
                PROGRESS_COLUMNS,
                col.binary_rows(
                    [
                        col.Binary.uuid(plan.hi[owner], plan.lo[owner]),
                        col.Binary.uuid(catalog.lesson_hi[lesson], catalog.lesson_lo[lesson]),
                        col.Binary("bool", completed),
                        col.Binary("timestamptz", touched, completed),
                        col.Binary("int4", minutes),
                        col.Binary("timestamptz", touched),
                        col.Binary("timestamptz", began),
                        col.Binary("timestamptz", touched),
                    ]
                ),
                rows,
                advance=s.stop - s.start,
                binary=True,
            )


def review_batches(world: World) -> Iterator[Batch]:
    """Yield course reviews (skewed positive) of enrollments that got somewhere."""
    catalog = world.must_catalog()
    course_hex = col.hex_ids(catalog.course_hi, catalog.course_lo)
    texts = {rating: [copy_escape(t) for t in REVIEW_TEXTS[rating]] for rating in REVIEW_TEXTS}
    size = world.scale.batch_rows
    for region in world.regions:
        plan = world.enrollments[region]
        users = world.users[region]
        rng = world.rng("reviews", region)
        shard = world.shard_of(region)
        total = len(plan.hi)
        draw = rng.random(total)
        chosen = ((plan.status == COMPLETED) & (draw < 0.45)) | (
            (plan.status == ACTIVE) & (plan.done >= 1) & (draw < 0.12)
        )
        picked = np.flatnonzero(chosen)
        n_all = len(picked)
        rating = (
            np.where(
                plan.status[picked] == COMPLETED,
                rng.choice(5, size=n_all, p=RATINGS_COMPLETED),
                rng.choice(5, size=n_all, p=RATINGS_ACTIVE),
            )
            + 1
        )
        end = plan.end_ms[picked]
        created = end + ((WORLD_NOW_MS - end) * rng.random(n_all) * 0.2).astype(np.int64)
        hi, lo = col.owned_ids(region, created, rng)
        has_text = rng.random(n_all) < 0.75
        text_pick = rng.integers(0, 1 << 30, size=n_all)
        for start in range(0, max(n_all, 1), size):
            s = slice(start, min(start + size, n_all))
            n = s.stop - s.start
            index = picked[s]
            body = [
                texts[r][p % len(texts[r])].format(topic=catalog.topic[c]) if t else col.NULL
                for r, p, c, t in zip(
                    rating[s].tolist(),
                    text_pick[s].tolist(),
                    plan.course[index].tolist(),
                    has_text[s].tolist(),
                    strict=True,
                )
            ]
            created_text = col.timestamps(created[s])
            yield Batch(
                shard,
                "course_reviews",
                REVIEW_COLUMNS,
                col.lines(
                    [
                        col.hex_ids(hi[s], lo[s]),
                        col.hex_ids(plan.hi[index], plan.lo[index]),
                        col.hex_ids(users.hi[plan.user[index]], users.lo[plan.user[index]]),
                        course_hex[plan.course[index]],
                        col.integers(rating[s]),
                        body,
                        created_text,
                        created_text,
                    ]
                ),
                n,
                advance=total if start == 0 else 0,
            )
