"""The assessments phase: definitions (catalog, every shard) and attempts (learner's shard).

Definitions: every quiz lesson gets a quiz (3 to 6 objective questions:
single and multiple choice, true/false, short answer), every assignment lesson
an assignment (an essay, sometimes with a short answer), and about a third of
the courses a final exam. Most are required; a draft course's assessments are
drafts, the others are published with their course.

Attempts follow each learner's progress: an assessment whose lesson the
learner has reached (a completed enrollment has reached them all) is attempted
with a probability that grows with how far the learner got; learners differ
in ability (a beta draw), and a failed attempt is often retried within the
attempt limit. A completed enrollment has a passed attempt at every required
assessment (its last attempt passes), which is what the completion rule asks;
some active learners have an essay waiting for the instructor or an attempt
still open. Every derived value -- points of objective answers, each attempt's
score, percent and passed, each assessment's totals, every enrollment's
completion -- is consistent by construction, and the loader verifies them with
set-based SQL (``runner.CHECKS``) before it commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np

from elearn_data.regions import Region
from elearn_data.seeding import columns as col
from elearn_data.seeding.catalog import _all_shards, _ranks, _reference_ids
from elearn_data.seeding.fakes import copy_escape
from elearn_data.seeding.plan import (
    ACTIVE,
    COMPLETED,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    WORLD_NOW_MS,
    Batch,
    Enrollments,
    World,
)

ASSESSMENT_COLUMNS: Final = (
    "id",
    "course_id",
    "lesson_id",
    "title",
    "kind",
    "passing_percent",
    "max_attempts",
    "time_limit_minutes",
    "required",
    "status",
    "question_count",
    "total_points",
    "published_at",
    "created_at",
    "updated_at",
)
QUESTION_COLUMNS: Final = (
    "id",
    "assessment_id",
    "question_order",
    "kind",
    "prompt",
    "points",
    "options",
    "correct",
    "created_at",
    "updated_at",
)
ATTEMPT_COLUMNS: Final = (
    "id",
    "enrollment_id",
    "assessment_id",
    "attempt_number",
    "status",
    "score",
    "max_score",
    "percent",
    "passed",
    "started_at",
    "deadline_at",
    "submitted_at",
    "graded_at",
    "updated_at",
)
ANSWER_COLUMNS: Final = (
    "attempt_id",
    "question_id",
    "response",
    "points_awarded",
    "graded_by",
    "feedback",
    "answered_at",
    "graded_at",
    "updated_at",
)

KINDS: Final = np.array(["quiz", "assignment", "exam"])
QUESTION_KINDS: Final = np.array(
    ["single_choice", "multiple_choice", "true_false", "short_answer", "essay"]
)
SINGLE, MULTIPLE, TRUE_FALSE, SHORT, ESSAY = range(5)
PASSING: Final = np.array([50, 60, 70, 80])
MAX_ATTEMPTS: Final = np.array([0, 1, 2, 3])  # 0: unlimited
LIMITS: Final = np.array([0, 15, 30, 60])  # minutes, 0: none
# Short answers and what a learner who does not know writes instead.
SHORT_KEYS: Final = ("Normalization", "Recursion", "Latency", "Gradient", "Index", "Closure")
OPTIONS: Final = ('["Option A", "Option B", "Option C", "Option D"]', '["True", "False"]')

ESSAY_TEXT: Final = '"My answer discusses the main trade-offs with an example."'
FEEDBACK_BYTES: Final = np.array(
    [b"Well argued.", b"Good, but give an example.", b"Too short.", b""]
)


@dataclass
class Definitions:
    """The seeded assessments and questions, as arrays (what the attempts need)."""

    course: np.ndarray  # course index of each assessment
    lesson_pos: np.ndarray  # position of its lesson in the course (exam: after the last)
    required: np.ndarray  # bool
    published: np.ndarray  # bool
    published_ms: np.ndarray
    passing: np.ndarray  # percent
    max_attempts: np.ndarray  # 0: unlimited
    limit: np.ndarray  # minutes, 0: none
    total: np.ndarray  # points
    has_essay: np.ndarray  # bool
    q_start: np.ndarray
    q_count: np.ndarray
    hi: np.ndarray
    lo: np.ndarray
    # per question
    q_kind: np.ndarray
    q_points: np.ndarray
    q_hi: np.ndarray
    q_lo: np.ndarray
    q_right: np.ndarray  # the correct response, JSON text
    q_wrong: np.ndarray  # a wrong response, JSON text
    q_right_b: np.ndarray  # the same as UTF-8 bytes (binary COPY)
    q_wrong_b: np.ndarray
    # per course
    first: np.ndarray  # index of the course's first assessment
    count: np.ndarray  # the course's assessments
    # for the rows only
    kind: np.ndarray  # index into KINDS
    lesson: np.ndarray  # lesson index, -1 for an exam
    created_ms: np.ndarray
    short_key: np.ndarray  # index into SHORT_KEYS of each question


def plan_definitions(world: World) -> Definitions:
    """Draw every course's assessments and their questions."""
    catalog = world.must_catalog()
    rng = world.rng("assessments")
    n_courses = len(catalog.capacity)
    lesson_course = np.repeat(np.arange(n_courses), catalog.lesson_count)
    graded_lesson = np.flatnonzero(np.isin(catalog.lesson_type, (2, 3)))
    exam_course = np.flatnonzero(rng.random(n_courses) < 0.35)
    course = np.concatenate([lesson_course[graded_lesson], exam_course])
    kind = np.concatenate(
        [np.where(catalog.lesson_type[graded_lesson] == 2, 0, 1), np.full(len(exam_course), 2)]
    )
    lesson = np.concatenate([graded_lesson, np.full(len(exam_course), -1)])
    order = np.lexsort((lesson < 0, lesson, course))  # lessons in curriculum order, exams last
    course, kind, lesson = course[order], kind[order], lesson[order]
    n = len(course)
    lesson_pos = np.where(
        lesson >= 0, lesson - catalog.lesson_start[course], catalog.lesson_count[course]
    )
    required = np.where(kind == 1, rng.random(n) < 0.6, rng.random(n) < 0.9)
    published = catalog.published_ms[course] > 0
    published_ms = np.where(published, catalog.published_ms[course], 0)
    passing = PASSING[rng.choice(4, size=n, p=[0.2, 0.45, 0.25, 0.1])]
    max_attempts = np.where(
        kind == 2, 1 + rng.integers(0, 2, size=n), MAX_ATTEMPTS[rng.choice(4, size=n)]
    )
    limit = np.where(kind == 1, 0, LIMITS[rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])])

    # Questions: quizzes 3-6 objective, exams 6-10 objective, assignments an essay (+ short).
    q_count = np.where(
        kind == 0,
        rng.integers(3, 7, size=n),
        np.where(kind == 2, rng.integers(6, 11, size=n), 1 + (rng.random(n) < 0.4)),
    )
    q_start = np.concatenate([[0], np.cumsum(q_count)[:-1]]).astype(np.int64)
    owner = np.repeat(np.arange(n), q_count)
    position = _ranks(owner) - 1
    m = len(owner)
    objective = rng.choice(4, size=m, p=[0.4, 0.2, 0.25, 0.15])
    q_kind = np.where((kind[owner] == 1) & (position == 0), ESSAY, objective)
    q_kind = np.where((kind[owner] == 1) & (position > 0), SHORT, q_kind)
    q_points = np.where(
        q_kind == ESSAY, 10, np.where(kind[owner] == 2, rng.choice([1, 2, 3], size=m), 1)
    )
    total = np.bincount(owner, weights=q_points, minlength=n).astype(np.int64)
    has_essay = np.bincount(owner, weights=q_kind == ESSAY, minlength=n) > 0

    right_single = rng.integers(0, 4, size=m)
    pair = rng.integers(0, 4, size=(m, 2))
    pair[:, 1] = np.where(pair[:, 1] == pair[:, 0], (pair[:, 0] + 1) % 4, pair[:, 1])
    low, high = np.minimum(pair[:, 0], pair[:, 1]), np.maximum(pair[:, 0], pair[:, 1])
    truth = rng.random(m) < 0.5
    short = rng.integers(0, len(SHORT_KEYS), size=m)
    int_text = np.array([str(i) for i in range(4)])
    right = np.select(
        [q_kind == SINGLE, q_kind == MULTIPLE, q_kind == TRUE_FALSE, q_kind == SHORT],
        [
            int_text[right_single],
            np.strings.add(
                np.strings.add(np.strings.add("[", int_text[low]), ", "),
                np.strings.add(int_text[high], "]"),
            ),
            np.where(truth, "true", "false"),
            np.array([f'"{SHORT_KEYS[i].lower()}"' for i in short.tolist()], dtype=object).astype(
                str
            ),
        ],
        ESSAY_TEXT,
    )
    wrong = np.select(
        [q_kind == SINGLE, q_kind == MULTIPLE, q_kind == TRUE_FALSE, q_kind == SHORT],
        [
            int_text[(right_single + 1) % 4],
            np.strings.add(np.strings.add("[", int_text[low]), "]"),
            np.where(truth, "false", "true"),
            '"not sure"',
        ],
        ESSAY_TEXT,
    )
    created = np.where(published, catalog.published_ms[course] - HOUR_MS, WORLD_NOW_MS - 2 * DAY_MS)
    hi, lo = _reference_ids(world, n, created, [None] * n, rng)
    q_hi, q_lo = _reference_ids(world, m, created[owner] + position, [None] * m, rng)
    counts = np.bincount(course, minlength=n_courses)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return Definitions(
        course=course,
        lesson_pos=lesson_pos,
        required=required,
        published=published,
        published_ms=published_ms,
        passing=passing,
        max_attempts=max_attempts,
        limit=limit,
        total=total,
        has_essay=has_essay,
        q_start=q_start,
        q_count=q_count,
        hi=hi,
        lo=lo,
        q_kind=q_kind,
        q_points=q_points,
        q_hi=q_hi,
        q_lo=q_lo,
        q_right=right,
        q_wrong=wrong,
        q_right_b=np.strings.encode(right, "utf-8"),
        q_wrong_b=np.strings.encode(wrong, "utf-8"),
        first=first,
        count=counts,
        kind=kind,
        lesson=lesson,
        created_ms=created.astype(np.int64),
        short_key=short,
    )


def _definition_rows(world: World, plan: Definitions) -> Iterator[Batch]:
    """Yield the assessments and questions (every shard)."""
    catalog = world.must_catalog()
    lesson, created, short, kind = plan.lesson, plan.created_ms, plan.short_key, plan.kind
    n = len(plan.course)
    lesson_hex = np.where(
        lesson >= 0,
        col.hex_ids(
            catalog.lesson_hi[np.maximum(lesson, 0)], catalog.lesson_lo[np.maximum(lesson, 0)]
        ),
        col.NULL,
    )
    titles = [
        f"Final exam: {catalog.course_titles[c]}"[:200]
        if k == 2
        else f"{'Quiz' if k == 0 else 'Assignment'}: {catalog.lesson_titles[max(li, 0)]}"
        for k, c, li in zip(kind.tolist(), plan.course.tolist(), lesson.tolist(), strict=True)
    ]
    course_hex = col.hex_ids(catalog.course_hi, catalog.course_lo)
    published_text = col.nullable(col.timestamps(plan.published_ms), plan.published)
    updated = np.where(plan.published, np.maximum(plan.published_ms, created), created)
    size = world.scale.batch_rows
    for start in range(0, n, size):
        s = slice(start, min(start + size, n))
        rows = s.stop - s.start
        payload = col.lines(
            [
                col.hex_ids(plan.hi[s], plan.lo[s]),
                course_hex[plan.course[s]],
                lesson_hex[s],
                [copy_escape(t) for t in titles[s]],
                KINDS[kind[s]],
                col.integers(plan.passing[s]),
                col.nullable(col.integers(plan.max_attempts[s]), plan.max_attempts[s] > 0),
                col.nullable(col.integers(plan.limit[s]), plan.limit[s] > 0),
                col.flags(plan.required[s]),
                np.where(plan.published[s], "published", "draft"),
                col.integers(plan.q_count[s]),
                col.integers(plan.total[s]),
                published_text[s],
                col.timestamps(created[s]),
                col.timestamps(updated[s]),
            ]
        )
        yield from _all_shards(world, "assessments", ASSESSMENT_COLUMNS, payload, rows)
    m = len(plan.q_kind)
    owner = np.repeat(np.arange(n), plan.q_count)
    position = _ranks(owner)
    prompts = np.array(
        [
            "Pick the best answer.",
            "Select every answer that applies.",
            "True or false?",
            "Name the concept in one or two words.",
            "Explain your approach in a few paragraphs.",
        ]
    )
    options = np.where(plan.q_kind <= MULTIPLE, OPTIONS[0], "[]")
    key = np.select(
        [plan.q_kind == SINGLE, plan.q_kind == MULTIPLE, plan.q_kind <= SHORT],
        [
            np.strings.add(np.strings.add("[", plan.q_right), "]"),
            plan.q_right,
            np.strings.add(np.strings.add("[", plan.q_right), "]"),
        ],
        "[]",
    )
    # A short answer's key is the proper spelling; learners type it in lower case.
    proper = np.array([f'["{SHORT_KEYS[i]}"]' for i in short.tolist()], dtype=object).astype(str)
    key = np.where(plan.q_kind == SHORT, proper, key)
    q_time = col.timestamps(created[owner] + position)
    for start in range(0, m, size):
        s = slice(start, min(start + size, m))
        payload = col.lines(
            [
                col.hex_ids(plan.q_hi[s], plan.q_lo[s]),
                col.hex_ids(plan.hi[owner[s]], plan.lo[owner[s]]),
                col.integers(position[s]),
                QUESTION_KINDS[plan.q_kind[s]],
                prompts[plan.q_kind[s]],
                col.integers(plan.q_points[s]),
                options[s],
                key[s],
                q_time[s],
                q_time[s],
            ]
        )
        yield from _all_shards(
            world, "assessment_questions", QUESTION_COLUMNS, payload, s.stop - s.start
        )


def assessment_batches(world: World) -> Iterator[Batch]:
    """Yield the definitions (every shard), then every region's attempts and answers."""
    plan = plan_definitions(world)
    yield from _definition_rows(world, plan)
    yield from _attempt_rows(world, plan)


def _attempt_rows(world: World, plan: Definitions) -> Iterator[Batch]:
    catalog = world.must_catalog()
    step = max(1, world.scale.batch_rows // 4)
    for region in world.regions:
        enrollments = world.enrollments[region]
        rng = world.rng("attempts", region)
        total = len(enrollments.hi)
        ability = rng.beta(5.0, 2.0, size=total)
        for start in range(0, total, step):
            s = slice(start, min(start + step, total))
            yield from _chunk(
                world,
                plan,
                region,
                enrollments,
                s,
                ability=ability,
                rng=rng,
                graders_hi=catalog.instructor_hi,
                graders_lo=catalog.instructor_lo,
            )


def _chunk(
    world: World,
    plan: Definitions,
    region: Region,
    enrollments: Enrollments,
    s: slice,
    *,
    ability: np.ndarray,
    rng: np.random.Generator,
    graders_hi: np.ndarray,
    graders_lo: np.ndarray,
) -> Iterator[Batch]:
    """Yield the attempts and answers of the enrollments ``s`` of one region."""
    shard = world.shard_of(region)
    index = np.arange(s.start, s.stop)
    course = enrollments.course[index]
    # Pairs (enrollment, assessment of its course).
    per = plan.count[course]
    pair_e = np.repeat(index, per)
    pair_a = (
        plan.first[enrollments.course[pair_e]] + _ranks(np.repeat(np.arange(len(index)), per)) - 1
    )
    if len(pair_a) == 0:
        yield Batch(shard, "assessment_attempts", ATTEMPT_COLUMNS, b"", 0, s.stop - s.start)
        return
    status = enrollments.status[pair_e]
    done = enrollments.done[pair_e].astype(np.int64)
    published = plan.published[pair_a]
    completed = status == COMPLETED
    must_pass = completed & plan.required[pair_a] & published
    reached = published & (completed | (plan.lesson_pos[pair_a] < done))
    draw = rng.random(len(pair_a))
    tries = reached & (must_pass | (draw < np.where(completed, 0.7, 0.8)))
    limit = np.where(plan.max_attempts[pair_a] > 0, plan.max_attempts[pair_a], 3)
    k = np.where(tries, 1 + (rng.random(len(pair_a)) < 0.35) + (rng.random(len(pair_a)) < 0.1), 0)
    k = np.minimum(k, limit)
    # An active learner sometimes has one more attempt open right now.
    open_extra = tries & (status == ACTIVE) & (k < limit) & (rng.random(len(pair_a)) < 0.05)
    k = k + open_extra
    att_pair = np.repeat(np.arange(len(pair_a)), k)
    if len(att_pair) == 0:
        yield Batch(shard, "assessment_attempts", ATTEMPT_COLUMNS, b"", 0, s.stop - s.start)
        return
    number = _ranks(att_pair)
    last = number == k[att_pair]
    is_open = last & open_extra[att_pair]
    # A completed enrollment's last attempt at a required assessment passes
    # (never open: open attempts are an active learner's).
    forced = last & must_pass[att_pair]
    a_of = pair_a[att_pair]
    e_of = pair_e[att_pair]
    pending = (
        ~is_open & ~forced & plan.has_essay[a_of] & (enrollments.status[e_of] == ACTIVE)
        & (rng.random(len(att_pair)) < 0.15)
    )  # fmt: skip

    # Answers of every closed attempt: one per question.
    closed = np.flatnonzero(~is_open)
    n_q = plan.q_count[a_of[closed]]
    ans_att = np.repeat(closed, n_q)
    q = plan.q_start[a_of[ans_att]] + _ranks(np.repeat(np.arange(len(closed)), n_q)) - 1
    p = ability[e_of[ans_att]]
    right = rng.random(len(ans_att)) < p
    kind = plan.q_kind[q]
    essay = kind == ESSAY
    full = plan.q_points[q]
    essay_points = np.round(full * np.clip(rng.beta(6.0, 2.0, size=len(q)), 0, 1)).astype(np.int64)
    points = np.where(essay, essay_points, np.where(right, full, 0))
    # A forced pass: the learner got everything right on the attempt that passed.
    force = forced[ans_att]
    right = right | force
    points = np.where(force, full, points)
    waiting = pending[ans_att] & essay
    n_att = len(att_pair)
    score = np.bincount(ans_att, weights=np.where(waiting, 0, points), minlength=n_att).astype(
        np.int64
    )
    max_score = plan.total[a_of]
    hundredths = (score * 20_000 + max_score) // np.maximum(2 * max_score, 1)
    passed = hundredths >= plan.passing[a_of] * 100

    enrolled = enrollments.enrolled_ms[e_of]
    end = enrollments.end_ms[e_of]
    span = np.maximum(end - enrolled, 4 * MINUTE_MS)
    kk = k[att_pair]
    started = enrolled + (span * (number - 1 + 0.8 * rng.random(n_att)) / kk).astype(np.int64)
    started = np.maximum(np.minimum(started, WORLD_NOW_MS - 2 * HOUR_MS), enrolled)
    minutes = np.where(plan.limit[a_of] > 0, plan.limit[a_of], 60)
    taken = (minutes * MINUTE_MS * (0.3 + 0.6 * rng.random(n_att))).astype(np.int64)
    submitted = started + np.maximum(taken, 1000)
    deadline = started + plan.limit[a_of] * MINUTE_MS
    graded = np.where(
        plan.has_essay[a_of],
        np.minimum(
            submitted + (rng.random(n_att) * 3 * DAY_MS).astype(np.int64), WORLD_NOW_MS - HOUR_MS
        ),
        submitted,
    )
    graded = np.maximum(graded, submitted)
    status_text = np.where(is_open, b"in_progress", np.where(pending, b"submitted", b"graded"))
    done_att = ~is_open
    is_graded = done_att & ~pending
    hi, lo = col.owned_ids(region, started, rng)
    updated = np.where(is_open, started, np.where(is_graded, graded, submitted))
    timed = plan.limit[a_of] > 0
    yield Batch(
        shard,
        "assessment_attempts",
        ATTEMPT_COLUMNS,
        col.binary_rows(
            [
                col.Binary.uuid(hi, lo),
                col.Binary.uuid(enrollments.hi[e_of], enrollments.lo[e_of]),
                col.Binary.uuid(plan.hi[a_of], plan.lo[a_of]),
                col.Binary("int4", number),
                col.Binary("text", status_text),
                col.Binary("numeric2", score * 100, done_att),
                col.Binary("numeric2", max_score * 100, done_att),
                col.Binary("numeric2", hundredths, done_att),
                col.Binary("bool", passed, is_graded),
                col.Binary("timestamptz", started),
                col.Binary("timestamptz", deadline, timed),
                col.Binary("timestamptz", submitted, done_att),
                col.Binary("timestamptz", graded, is_graded),
                col.Binary("timestamptz", updated),
            ]
        ),
        n_att,
        advance=s.stop - s.start,
        binary=True,
    )
    if len(ans_att) == 0:
        return
    answered = started[ans_att] + (
        (submitted[ans_att] - started[ans_att]) * rng.random(len(ans_att))
    ).astype(np.int64)
    # jsonb's binary form: a version byte (1), then the JSON text.
    response = np.strings.add(
        b"\x01", np.where(right | essay, plan.q_right_b[q], plan.q_wrong_b[q])
    )
    course_of = plan.course[a_of[ans_att]]
    hand = essay & ~waiting
    feedback = FEEDBACK_BYTES[rng.integers(0, len(FEEDBACK_BYTES), size=len(q))]
    has_feedback = hand & (feedback != b"")
    answer_graded = np.where(hand, graded[ans_att], submitted[ans_att])
    yield Batch(
        shard,
        "attempt_answers",
        ANSWER_COLUMNS,
        col.binary_rows(
            [
                col.Binary.uuid(hi[ans_att], lo[ans_att]),
                col.Binary.uuid(plan.q_hi[q], plan.q_lo[q]),
                col.Binary("text", response),
                col.Binary("numeric2", points * 100, ~waiting),
                col.Binary.uuid(graders_hi[course_of], graders_lo[course_of], hand),
                col.Binary("text", np.where(has_feedback, feedback, b"-"), has_feedback),
                col.Binary("timestamptz", answered),
                col.Binary("timestamptz", answer_graded, ~waiting),
                col.Binary("timestamptz", np.where(hand, answer_graded, submitted[ans_att])),
            ]
        ),
        len(ans_att),
        binary=True,
    )
