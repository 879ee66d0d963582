"""db.gamification on the real cluster: exactly-once points, streaks, badges, leaderboard.

The clock is under the tests' control: points and streak days take the events'
own timestamps (set here through SQL), and the leaderboard's week and month
follow ``db.gamification.clock``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import Duplicate, InvalidInput, NotFound
from elearn_data.models.gamification import DEFAULT_POINTS
from elearn_data.services.gamification import level_of, period_start
from tests.integration.api.helpers import published_course, register

LESSON = DEFAULT_POINTS["lesson_completed"]
COURSE = DEFAULT_POINTS["course_completed"]
REVIEW = DEFAULT_POINTS["review_written"]
DAY = DEFAULT_POINTS["streak_day"]
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def gdb(clean: Database) -> Iterator[Database]:
    clean.gamification.clock = lambda: NOW
    yield clean
    clean.gamification.clock = lambda: datetime.now(UTC)


def _all_rows(db: Database, sql: str, **params: Any) -> list[dict[str, Any]]:
    """The rows of ``sql`` on every shard (their union: one database holding every shard)."""
    found: list[dict[str, Any]] = []
    for shard in db.router.shards:
        with db.writer(shard) as uow:
            found += [dict(r._mapping) for r in uow.execute(text(sql), params, shard=shard)]
    return found


def _complete_at(db: Database, enrollment: uuid.UUID, lesson: uuid.UUID, at: datetime) -> None:
    """Complete a lesson at a given time (the event's own timestamp: the test clock)."""
    with db.writer(ids.owner_region(enrollment)) as uow:
        uow.execute(
            text(
                "INSERT INTO lesson_progress (enrollment_id, lesson_id, completed, completed_at)"
                " VALUES (:e, :l, true, :at)"
            ),
            {"e": enrollment, "l": lesson, "at": at},
        )


def _ledger(db: Database, user: uuid.UUID) -> list[dict[str, Any]]:
    return _all_rows(
        db,
        "SELECT event, source_id, points FROM points_ledger WHERE user_id = :u ORDER BY 1, 2",
        u=user,
    )


def test_eight_concurrent_completions_of_one_lesson_pay_once(gdb: Database) -> None:
    course, lessons = published_course(gdb, lessons=3)
    learner = register(gdb, "asia")
    enrollment = gdb.enrollments.enroll(learner, course)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def complete() -> None:
        try:
            barrier.wait()
            gdb.enrollments.complete_lesson(enrollment, lessons[0])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=complete) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    events = [r["event"] for r in _ledger(gdb, learner)]
    assert events == ["lesson_completed", "streak_day"]
    summary = gdb.gamification.summary(learner)
    assert summary.points == LESSON + DAY
    assert summary.streak_days == summary.longest_streak == 1


def test_reset_and_complete_again_pays_once_and_course_completion_once(gdb: Database) -> None:
    course, lessons = published_course(gdb, lessons=2)
    learner = register(gdb)
    enrollment = gdb.enrollments.enroll(learner, course)
    for lesson in lessons:
        gdb.enrollments.complete_lesson(enrollment, lesson)
    gdb.enrollments.reset_lesson(enrollment, lessons[1])  # the course reverts to active
    gdb.enrollments.complete_lesson(enrollment, lessons[1])  # and completes again
    events = sorted(r["event"] for r in _ledger(gdb, learner))
    assert events == ["course_completed", "lesson_completed", "lesson_completed", "streak_day"]
    assert gdb.gamification.summary(learner).points == 2 * LESSON + COURSE + DAY


def test_a_review_pays_once_even_when_updated(gdb: Database) -> None:
    course, _ = published_course(gdb)
    learner = register(gdb, "north_america")
    enrollment = gdb.enrollments.enroll(learner, course)
    gdb.reviews.add(enrollment, 4, "good")
    gdb.reviews.add(enrollment, 5, "better on second thought")
    history = gdb.gamification.history(learner)
    assert [(h.event, h.points, h.source_id) for h in history] == [
        ("review_written", REVIEW, str(course))
    ]


def test_streaks_follow_utc_days_and_break_after_a_gap(gdb: Database) -> None:
    course, lessons = published_course(gdb, lessons=6)
    learner = register(gdb, "oceania")
    enrollment = gdb.enrollments.enroll(learner, course)
    day = datetime(2026, 3, 1, tzinfo=UTC)
    # Two lessons late on one UTC day, one just after midnight: two days, not three.
    _complete_at(gdb, enrollment, lessons[0], day + timedelta(hours=22))
    _complete_at(gdb, enrollment, lessons[1], day + timedelta(hours=23, minutes=59))
    _complete_at(gdb, enrollment, lessons[2], day + timedelta(days=1, minutes=1))
    summary = gdb.gamification.summary(learner)
    assert (summary.streak_days, summary.longest_streak) == (2, 2)
    _complete_at(gdb, enrollment, lessons[3], day + timedelta(days=2, hours=5))
    assert gdb.gamification.summary(learner).streak_days == 3
    # 2026-03-04 without activity: the streak is broken, a new one starts at 1.
    _complete_at(gdb, enrollment, lessons[4], day + timedelta(days=4, hours=5))
    summary = gdb.gamification.summary(learner)
    assert (summary.streak_days, summary.longest_streak) == (1, 3)
    # A late-arriving event of the gap day joins the runs again: 1..5 March.
    _complete_at(gdb, enrollment, lessons[5], day + timedelta(days=3, hours=1))
    summary = gdb.gamification.summary(learner)
    assert (summary.streak_days, summary.longest_streak) == (5, 5)
    days = [r["source_id"] for r in _ledger(gdb, learner) if r["event"] == "streak_day"]
    assert days == [f"2026-03-0{d}" for d in range(1, 6)]
    assert summary.points == 6 * LESSON + 5 * DAY + COURSE


def test_a_submitted_attempt_is_a_streak_day_and_a_pass_pays_once(gdb: Database) -> None:
    course, _ = published_course(gdb, lessons=1)
    assessment = gdb.assessments.create(course, title="Quick check", required=False)
    question = gdb.assessments.add_question(
        assessment, prompt="2 + 2 = 4?", kind="true_false", order=1, correct=[True]
    )
    gdb.assessments.publish(assessment)
    learner = register(gdb, "africa")
    enrollment = gdb.enrollments.enroll(learner, course)
    for _ in range(2):  # two passed attempts: one payment
        attempt = gdb.assessments.start(enrollment, assessment)
        gdb.assessments.answer(attempt, question, True)
        assert gdb.assessments.submit(attempt).passed
    events = sorted(r["event"] for r in _ledger(gdb, learner))
    assert events == ["assessment_passed", "streak_day"]


def test_badges_are_awarded_once_and_retroactively(gdb: Database) -> None:
    course, lessons = published_course(gdb, lessons=3)
    early = register(gdb, "europe")
    late = register(gdb, "asia")
    for learner, done in ((early, 3), (late, 1)):
        enrollment = gdb.enrollments.enroll(learner, course)
        for lesson in lessons[:done]:
            gdb.enrollments.complete_lesson(enrollment, lesson)
    badge = gdb.gamification.create_badge(
        "three-lessons", name="Three lessons", criterion="lessons_completed", threshold=3
    )
    assert [b.code for b in gdb.gamification.badges(early)] == ["THREE-LESSONS"]
    assert gdb.gamification.badges(late) == []
    # Reaching it later: awarded the moment the criterion is reached, once.
    enrollment = gdb.enrollments.for_user(late)[0].id
    for lesson in lessons[1:]:
        gdb.enrollments.complete_lesson(enrollment, lesson)
    gdb.enrollments.reset_lesson(enrollment, lessons[2])
    gdb.enrollments.complete_lesson(enrollment, lessons[2])
    assert [b.badge_id for b in gdb.gamification.badges(late)] == [badge]
    assert [b.code for b in gdb.gamification.summary(late).badges] == ["THREE-LESSONS"]
    awards = _all_rows(gdb, "SELECT user_id FROM badge_awards WHERE badge_id = :b", b=badge)
    assert sorted(r["user_id"] for r in awards) == sorted([early, late])


def test_concurrent_badge_creation_and_activity_award_each_badge_once(gdb: Database) -> None:
    course, lessons = published_course(gdb, lessons=2)
    learners = [register(gdb, region) for region in ("europe", "asia", "north_america") * 2]
    enrollments = [gdb.enrollments.enroll(u, course) for u in learners]
    for enrollment in enrollments:
        gdb.enrollments.complete_lesson(enrollment, lessons[0])
    barrier = threading.Barrier(len(enrollments) + 3)
    errors: list[BaseException] = []
    badges: list[uuid.UUID] = []

    def activity(enrollment: uuid.UUID) -> None:
        try:
            barrier.wait()
            gdb.enrollments.complete_lesson(enrollment, lessons[1])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def create(n: int) -> None:
        try:
            barrier.wait()
            badges.append(
                gdb.gamification.create_badge(
                    f"TWO-{n}", name=f"Two lessons {n}", criterion="lessons_completed", threshold=2
                )
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=activity, args=(e,)) for e in enrollments]
    threads += [threading.Thread(target=create, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    awards = _all_rows(gdb, "SELECT user_id, badge_id FROM badge_awards")
    assert sorted((r["user_id"], r["badge_id"]) for r in awards) == sorted(
        (u, b) for u in learners for b in badges
    )


def test_leaderboard_equals_one_database_computation(gdb: Database) -> None:
    course, lessons = published_course(gdb, lessons=4)
    other, other_lessons = published_course(gdb, lessons=2)
    regions = ("europe", "asia", "north_america", "africa", "oceania", "south_america")
    learners = [register(gdb, regions[i % len(regions)], first_name=f"L{i}") for i in range(12)]
    old = NOW - timedelta(days=60)
    last_week = period_start("week", NOW) - timedelta(days=2)  # this month, not this week
    for i, learner in enumerate(learners):
        enrollment = gdb.enrollments.enroll(learner, course)
        # Ties on purpose: pairs of learners with the same activity.
        for k, lesson in enumerate(lessons[: (i // 2) % 4 + 1]):
            at = (old, last_week, NOW)[(i + k) % 3]
            _complete_at(gdb, enrollment, lesson, at)
        if i % 3 == 0:
            second = gdb.enrollments.enroll(learner, other)
            _complete_at(gdb, second, other_lessons[0], NOW)
    rows = _all_rows(
        gdb,
        "SELECT l.user_id, l.points, l.awarded_at, l.course_id, u.region, u.first_name"
        " FROM points_ledger l JOIN users u ON u.id = l.user_id",
    )

    def oracle(period: str, region: str | None, course_id: uuid.UUID | None, n: int) -> list[Any]:
        since = period_start(period, NOW)
        totals: dict[uuid.UUID, int] = {}
        names: dict[uuid.UUID, tuple[str, str]] = {}
        for r in rows:
            if since is not None and r["awarded_at"] < since:
                continue
            if region is not None and r["region"] != region:
                continue
            if course_id is not None and r["course_id"] != course_id:
                continue
            totals[r["user_id"]] = totals.get(r["user_id"], 0) + r["points"]
            names[r["user_id"]] = (r["first_name"], r["region"])
        ranked = sorted(((u, p) for u, p in totals.items() if p > 0), key=lambda x: (-x[1], x[0]))
        return [
            (rank, u, names[u][0], names[u][1], p)
            for rank, (u, p) in enumerate(ranked[:n], start=1)
        ]

    cases = [
        ("all", None, None, 5),
        ("all", None, None, 100),
        ("month", None, None, 4),
        ("week", None, None, 3),
        ("all", "asia", None, 10),
        ("week", "europe", None, 10),
        ("all", None, course, 6),
        ("month", None, other, 10),
    ]
    for period, region, course_id, n in cases:
        board = gdb.gamification.leaderboard(
            limit=n, period=period, region=region, course_id=course_id
        )
        got = [(e.rank, e.user_id, e.first_name, e.region, e.points) for e in board]
        assert got == oracle(period, region, course_id, n), (period, region, course_id, n)
        assert got  # every case has a leader
    points = [e.points for e in gdb.gamification.leaderboard(limit=100)]
    assert len(points) != len(set(points))  # ties were exercised


def test_set_points_changes_future_payments_only(gdb: Database) -> None:
    course, lessons = published_course(gdb, lessons=2)
    learner = register(gdb)
    enrollment = gdb.enrollments.enroll(learner, course)
    gdb.enrollments.complete_lesson(enrollment, lessons[0])
    try:
        gdb.gamification.set_points("lesson_completed", 40)
        gdb.enrollments.complete_lesson(enrollment, lessons[1])
    finally:
        gdb.gamification.set_points("lesson_completed", LESSON)
    paid = [h.points for h in gdb.gamification.history(learner) if h.event == "lesson_completed"]
    assert sorted(paid) == [LESSON, 40]


def test_levels_follow_the_thresholds(gdb: Database) -> None:
    thresholds = gdb.settings.gamification.level_thresholds
    assert level_of(0, thresholds) == (1, thresholds[1])
    assert level_of(thresholds[1], thresholds) == (2, thresholds[2])
    assert level_of(thresholds[-1] + 5, thresholds) == (len(thresholds), None)
    learner = register(gdb)
    summary = gdb.gamification.summary(learner)
    assert (summary.points, summary.level, summary.badges) == (0, 1, ())


def test_bad_input_raises_and_writes_nothing(gdb: Database) -> None:
    learner = register(gdb)
    missing = ids.new_id(ids.owner_region(learner))
    with pytest.raises(NotFound):
        gdb.gamification.summary(missing)
    with pytest.raises(NotFound):
        gdb.gamification.history(missing)
    with pytest.raises(NotFound):
        gdb.gamification.badges(missing)
    with pytest.raises(InvalidInput):
        gdb.gamification.leaderboard(period="year")
    with pytest.raises(InvalidInput):
        gdb.gamification.leaderboard(region="atlantis")
    with pytest.raises(InvalidInput):
        gdb.gamification.leaderboard(limit=0)
    for bad in (
        {"criterion": "logins", "threshold": 1},
        {"criterion": "points", "threshold": -1},
        {"criterion": "points", "threshold": 1.5},
    ):
        with pytest.raises(InvalidInput):
            gdb.gamification.create_badge("BAD", name="Bad", **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        gdb.gamification.set_points("login", 5)
    with pytest.raises(InvalidInput):
        gdb.gamification.set_points("lesson_completed", -1)
    assert _all_rows(gdb, "SELECT * FROM badges") == []
    rules = _all_rows(gdb, "SELECT event, points FROM point_rules")
    expected = sorted(list(DEFAULT_POINTS.items()) * len(gdb.router.shards))
    assert sorted((r["event"], r["points"]) for r in rules) == expected
    gdb.gamification.create_badge("ONCE", name="Once", criterion="points", threshold=0)
    with pytest.raises(Duplicate):
        gdb.gamification.create_badge("once", name="Again", criterion="points", threshold=1)
    names = _all_rows(gdb, "SELECT name FROM badges")
    assert [r["name"] for r in names] == ["Once"] * len(gdb.router.shards)


def test_the_ledger_is_append_only_for_the_application_role(gdb: Database) -> None:
    course, lessons = published_course(gdb, lessons=1)
    learner = register(gdb)
    gdb.enrollments.complete_lesson(gdb.enrollments.enroll(learner, course), lessons[0])
    for statement in ("UPDATE points_ledger SET points = 1000", "DELETE FROM points_ledger"):
        with pytest.raises(Exception, match="permission denied"), gdb.writer("europe") as uow:
            uow.execute(text(statement), shard=gdb.router.resolve("europe"))
    assert gdb.gamification.summary(learner).points == LESSON + DAY + COURSE


def test_points_by_region_and_badge_counts_equal_one_database_figures(gdb: Database) -> None:
    course, lessons = published_course(gdb, lessons=3)
    learners = [register(gdb, r) for r in ("europe", "europe", "asia", "north_america", "africa")]
    for i, learner in enumerate(learners):
        enrollment = gdb.enrollments.enroll(learner, course)
        for lesson in lessons[: i % 3 + 1]:
            gdb.enrollments.complete_lesson(enrollment, lesson)
    gdb.gamification.create_badge("FIRST", name="First", criterion="lessons_completed", threshold=1)
    gdb.gamification.create_badge("ALL3", name="All", criterion="courses_completed", threshold=1)
    gdb.gamification.create_badge("NONE", name="None yet", criterion="points", threshold=10**6)

    frame = gdb.analytics.points_by_region()
    rows = _all_rows(
        gdb, "SELECT u.region, s.points FROM learner_points s JOIN users u ON u.id = s.user_id"
    )
    for record in frame.to_dict("records"):
        mine = [r["points"] for r in rows if r["region"] == record["region"]]
        assert (record["learners"], record["points"]) == (len(mine), sum(mine))
        assert record["shard"] == gdb.router.shard_of_region(record["region"])
    assert len(frame) == 6 and frame["learners"].sum() == len(learners)

    counts = gdb.analytics.badge_counts()
    awards = _all_rows(gdb, "SELECT b.code FROM badge_awards a JOIN badges b ON b.id = a.badge_id")
    assert list(counts["code"]) == ["ALL3", "FIRST", "NONE"]
    assert dict(zip(counts["code"], counts["awarded"], strict=True)) == {
        "ALL3": sum(1 for a in awards if a["code"] == "ALL3"),
        "FIRST": len(learners),
        "NONE": 0,
    }
    assert counts.set_index("code").loc["ALL3", "awarded"] == 1  # the third learner: 3 lessons
