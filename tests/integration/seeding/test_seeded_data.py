"""The small scale, seeded once for this module, checked row by row on the real cluster."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, timedelta
from decimal import Decimal

import pytest

from elearn_data import ids
from elearn_data.cluster.local import LocalCluster
from elearn_data.content.documents import CourseContent
from elearn_data.database import Database
from elearn_data.models.gamification import DEFAULT_POINTS
from elearn_data.regions import Region
from elearn_data.security import EmailHasher, normalise_email
from elearn_data.seeding import SEED_PASSWORD, SeedReport, seed
from tests.integration.seeding.helpers import (
    LEARNER_TABLES,
    REFERENCE_TABLES,
    rows,
    scalar,
    table_checksums,
)
from tests.support import truncate_all

PHONE = re.compile(r"^[0-9+(). x-]{3,32}$")
CODE = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{1,31}$")
INVOICE = re.compile(r"^INV-(NA|EU|APAC)-20\d\d-\d{6,}$")


@pytest.fixture(scope="module")
def seeded(cluster: LocalCluster, db: Database) -> Iterator[SeedReport]:
    truncate_all(cluster)
    db.content_store.faults.clear()
    db.content_store.clear()
    events: list[tuple[str, int, int]] = []
    report = seed(db, "small", seed=0, progress=lambda *e: events.append(e))
    report.notes  # noqa: B018 - the report is used by the tests below
    yield report
    assert {phase for phase, _, _ in events} >= {"users", "catalog", "enrollments", "content"}


def shards(cluster: LocalCluster) -> list[str]:
    return list(cluster.state().shards)


def total(cluster: LocalCluster, sql: str) -> int:
    return sum(int(scalar(cluster, shard, sql)) for shard in shards(cluster))


def test_small_scale_gives_exactly_the_reference_figures(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    assert total(cluster, "SELECT count(*) FROM users WHERE role = 'student'") == 100
    assert total(cluster, "SELECT count(*) FROM users WHERE role = 'instructor'") == 20
    assert total(cluster, "SELECT count(*) FROM enrollments") == 200
    assert total(cluster, "SELECT count(*) FROM transactions") == 150
    for shard in shards(cluster):
        assert scalar(cluster, shard, "SELECT count(*) FROM courses") == 50
    totals = seeded.table_totals()
    assert totals["users"] == 120
    assert totals["courses"] == 50 * len(shards(cluster))
    assert seeded.rows == sum(totals.values())
    assert seeded.rows_per_s > 0


def test_the_report_counts_what_each_shard_holds(seeded: SeedReport, cluster: LocalCluster) -> None:
    for shard, tables in seeded.counts.items():
        for table, count in tables.items():
            assert scalar(cluster, shard, f"SELECT count(*) FROM {table}") == count, (shard, table)


def test_learners_are_spread_unevenly_over_all_six_regions(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    per_region: Counter[str] = Counter()
    for shard in shards(cluster):
        for region, count in rows(
            cluster, shard, "SELECT region, count(*) FROM users WHERE role = 'student' GROUP BY 1"
        ):
            per_region[region] += count
    assert set(per_region) == {r.value for r in Region}
    assert len(set(per_region.values())) > 1
    assert per_region["north_america"] > per_region["africa"]


def test_every_learner_row_lives_on_the_shard_of_the_region_its_id_carries(
    seeded: SeedReport, cluster: LocalCluster, db: Database
) -> None:
    keys = {
        "users": "id",
        "user_profiles": "user_id",
        "enrollments": "id",
        "lesson_progress": "enrollment_id",
        "course_reviews": "id",
        "assessment_attempts": "id",
        "attempt_answers": "attempt_id",
        "payment_methods": "id",
        "transactions": "id",
        "invoices": "id",
    }
    assert set(keys) == set(LEARNER_TABLES)
    for shard in shards(cluster):
        for table, key in keys.items():
            for (value,) in rows(cluster, shard, f"SELECT {key} FROM {table}"):
                assert db.router.shard_of_owner(value) == shard, (table, value)
        for user_id, region in rows(cluster, shard, "SELECT id, region FROM users"):
            assert ids.owner_region(user_id).value == region


def test_owned_rows_carry_the_region_of_their_user(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    for shard in shards(cluster):
        for table in ("enrollments", "course_reviews", "payment_methods", "transactions"):
            for row_id, user_id in rows(cluster, shard, f"SELECT id, user_id FROM {table}"):
                assert ids.owner_region(row_id) is ids.owner_region(user_id), table


def test_attempts_carry_the_region_of_their_enrollment(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    seen = 0
    for shard in shards(cluster):
        for attempt_id, enrollment_id in rows(
            cluster, shard, "SELECT id, enrollment_id FROM assessment_attempts"
        ):
            assert ids.owner_region(attempt_id) is ids.owner_region(enrollment_id)
            seen += 1
    assert seen > 0


def test_assessments_are_attempted_graded_and_gate_completion_realistically(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    """Recomputed from the raw rows, independently of the loader's own checks."""
    per_shard = {
        s: rows(cluster, s, "SELECT count(*) FROM assessments")[0][0] for s in shards(cluster)
    }
    assert len(set(per_shard.values())) == 1 and next(iter(per_shard.values())) >= 50
    statuses: Counter[str] = Counter()
    passed: Counter[object] = Counter()
    for shard in shards(cluster):
        for status, ok, n in rows(
            cluster, shard,
            "SELECT status, passed, count(*) FROM assessment_attempts GROUP BY 1, 2",
        ):  # fmt: skip
            statuses[status] += n
            passed[ok] += n
        # A completed enrollment passed every published required assessment of its course.
        assert not rows(
            cluster, shard,
            "SELECT e.id FROM enrollments e JOIN assessments a ON a.course_id = e.course_id"
            " WHERE e.status = 'completed' AND a.status = 'published' AND a.required"
            " AND NOT EXISTS (SELECT 1 FROM assessment_attempts t WHERE t.enrollment_id = e.id"
            " AND t.assessment_id = a.id AND t.passed)",
        )  # fmt: skip
        # Attempts stay within the limit, one open at most, in a live or dropped enrollment.
        assert not rows(
            cluster, shard,
            "SELECT t.enrollment_id FROM assessment_attempts t JOIN assessments a"
            " ON a.id = t.assessment_id GROUP BY t.enrollment_id, t.assessment_id, a.max_attempts"
            " HAVING count(*) > coalesce(a.max_attempts, 3)"
            " OR count(*) FILTER (WHERE t.status = 'in_progress') > 1",
        )  # fmt: skip
        # Essays are graded by the course's instructor.
        assert not rows(
            cluster, shard,
            "SELECT 1 FROM attempt_answers x JOIN assessment_attempts t ON t.id = x.attempt_id"
            " JOIN assessments a ON a.id = t.assessment_id JOIN courses c ON c.id = a.course_id"
            " WHERE x.graded_by IS NOT NULL AND x.graded_by <> c.instructor_id",
        )  # fmt: skip
    assert statuses["graded"] > statuses["submitted"] >= 0
    assert passed[True] > passed[False] > 0  # most learners pass, not all


def test_directory_rows_live_on_the_shard_their_hash_names(
    seeded: SeedReport, cluster: LocalCluster, db: Database
) -> None:
    seen = 0
    for shard in shards(cluster):
        for digest, user_id, region in rows(
            cluster, shard, "SELECT email_hash, user_id, region FROM email_directory"
        ):
            assert db.router.directory_shard(bytes(digest)) == shard
            assert ids.owner_region(user_id).value == region
            seen += 1
    assert seen == 120


def test_seat_ledgers_live_on_the_home_shard_of_their_course(
    seeded: SeedReport, cluster: LocalCluster, db: Database
) -> None:
    ledgers = 0
    for shard in shards(cluster):
        for (course_id,) in rows(cluster, shard, "SELECT course_id FROM course_seats"):
            assert db.router.home_shard_of(course_id) == shard
            ledgers += 1
    assert ledgers == 50


def test_courses_are_reference_ids_homed_in_their_instructors_region(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    shard = shards(cluster)[0]
    for course_id, instructor_id in rows(cluster, shard, "SELECT id, instructor_id FROM courses"):
        decoded = ids.decode(course_id)
        assert decoded.reference
        assert decoded.region is ids.owner_region(instructor_id)
    roles = {
        role
        for s in shards(cluster)
        for (role,) in rows(
            cluster,
            s,
            "SELECT u.role FROM users u WHERE u.id IN (SELECT instructor_id FROM courses)",
        )
    }
    assert roles == {"instructor"}
    for table in REFERENCE_TABLES:
        for (row_id,) in rows(cluster, shard, f"SELECT id FROM {table}"):
            assert ids.is_reference(row_id), table


def test_reference_rows_are_identical_on_every_shard(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    checksums = table_checksums(cluster)
    for table in REFERENCE_TABLES:
        per_shard = {checksums[(shard, table)] for shard in shards(cluster)}
        assert len(per_shard) == 1, table
        assert next(iter(per_shard))[0] > 0


def test_course_stats_partials_equal_a_recomputation_from_the_raw_rows(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    for shard in shards(cluster):
        stats = {
            row[0]: row[1:]
            for row in rows(
                cluster,
                shard,
                "SELECT course_id, enrollment_count, active_count, completed_count, "
                "dropped_count, rating_sum, rating_count FROM course_stats",
            )
        }
        courses = [c for (c,) in rows(cluster, shard, "SELECT id FROM courses")]
        assert set(stats) == set(courses)
        expected = {c: [0, 0, 0, 0, 0, 0] for c in courses}
        for course_id, status in rows(cluster, shard, "SELECT course_id, status FROM enrollments"):
            counts = expected[course_id]
            if status != "dropped":
                counts[0] += 1
            counts[{"active": 1, "completed": 2, "dropped": 3}[status]] += 1
        for course_id, rating in rows(
            cluster, shard, "SELECT course_id, rating FROM course_reviews"
        ):
            expected[course_id][4] += rating
            expected[course_id][5] += 1
        assert {c: list(v) for c, v in stats.items()} == expected


def test_enrollment_progress_equals_a_recomputation_from_the_progress_rows(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    for shard in shards(cluster):
        lessons = dict(
            rows(cluster, shard, "SELECT course_id, count(*) FROM course_lessons GROUP BY 1")
        )
        for course_id, lesson_count in rows(cluster, shard, "SELECT id, lesson_count FROM courses"):
            assert lesson_count == lessons.get(course_id, 0)
        done: Counter[uuid.UUID] = Counter()
        for enrollment_id, completed in rows(
            cluster, shard, "SELECT enrollment_id, completed FROM lesson_progress"
        ):
            done[enrollment_id] += int(completed)
        for eid, course_id, status, percent, completed_lessons, completed_at in rows(
            cluster,
            shard,
            "SELECT id, course_id, status, progress_percent, completed_lessons, completed_at "
            "FROM enrollments",
        ):
            n = lessons[course_id]
            assert completed_lessons == done[eid]
            expected = (Decimal(done[eid] * 100) / n).quantize(Decimal("0.01"))
            assert percent == min(expected, Decimal(100))
            if status != "dropped":
                assert (status == "completed") == (done[eid] == n)
            assert (completed_at is not None) == (status == "completed")


def test_progress_is_partial_for_most_enrollments(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    statuses: Counter[str] = Counter()
    partial = 0
    for shard in shards(cluster):
        for status, percent in rows(
            cluster, shard, "SELECT status, progress_percent FROM enrollments"
        ):
            statuses[status] += 1
            partial += int(0 < percent < 100)
    assert statuses["completed"] > 0
    assert statuses["active"] > statuses["completed"]
    assert statuses["dropped"] > 0
    assert partial > 20


def test_progress_rows_precede_the_enrollments_completion_and_follow_its_start(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    for shard in shards(cluster):
        bad = scalar(
            cluster,
            shard,
            "SELECT count(*) FROM lesson_progress p JOIN enrollments e ON e.id = p.enrollment_id "
            "WHERE p.created_at < e.enrolled_at OR p.last_accessed_at > coalesce(e.completed_at, "
            "e.dropped_at, now()) OR p.lesson_id NOT IN "
            "(SELECT id FROM course_lessons l WHERE l.course_id = e.course_id)",
        )
        assert bad == 0


def test_seat_ledgers_equal_live_enrollments_of_capacity_bound_courses(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    live: Counter[uuid.UUID] = Counter()
    for shard in shards(cluster):
        for course_id, count in rows(
            cluster,
            shard,
            "SELECT course_id, count(*) FROM enrollments WHERE status <> 'dropped' GROUP BY 1",
        ):
            live[course_id] += count
    capped = 0
    for shard in shards(cluster):
        for course_id, capacity, taken in rows(
            cluster, shard, "SELECT course_id, capacity, taken FROM course_seats"
        ):
            if capacity is None:
                assert taken == 0
            else:
                capped += 1
                assert taken == live[course_id]
                assert taken <= capacity
    assert capped > 0


def test_the_directory_resolves_every_seeded_email(
    seeded: SeedReport, cluster: LocalCluster, db: Database
) -> None:
    emails = {
        email: user_id
        for shard in shards(cluster)
        for user_id, email in rows(cluster, shard, "SELECT id, email FROM users")
    }
    assert len(emails) == 120
    for email, user_id in emails.items():
        assert normalise_email(email) == email
        found = db.users.find_by_email(email.upper())
        assert found is not None, email
        assert found.id == user_id


def test_directory_hashes_are_the_email_hasher_digests(
    seeded: SeedReport, cluster: LocalCluster, db: Database
) -> None:
    hasher = EmailHasher(db.settings)
    by_user = {
        user_id: bytes(digest)
        for shard in shards(cluster)
        for digest, user_id in rows(
            cluster, shard, "SELECT email_hash, user_id FROM email_directory"
        )
    }
    for shard in shards(cluster):
        for user_id, email in rows(cluster, shard, "SELECT id, email FROM users"):
            assert by_user[user_id] == hasher.digest(email)


def test_the_seed_password_authenticates_a_seeded_user(
    seeded: SeedReport, cluster: LocalCluster, db: Database
) -> None:
    shard = shards(cluster)[0]
    user_id, email = rows(
        cluster, shard, "SELECT id, email FROM users WHERE status = 'active' ORDER BY id LIMIT 1"
    )[0]
    assert seeded.password == SEED_PASSWORD
    user = db.users.authenticate(email, SEED_PASSWORD)
    assert user is not None
    assert user.id == user_id
    assert db.users.authenticate(email, "not-the-seed-password") is None


def test_every_seeded_user_has_a_hash_of_its_own(
    seeded: SeedReport, cluster: LocalCluster, db: Database
) -> None:
    hashes = [
        h
        for shard in shards(cluster)
        for (h,) in rows(cluster, shard, "SELECT password_hash FROM users")
    ]
    assert len(set(hashes)) == len(hashes) > 100
    assert len({h.rsplit("$", 2)[1] for h in hashes}) == len(hashes)  # distinct salts
    # The first login upgrades the cheap seeded hash to the settings' parameters.
    shard = shards(cluster)[0]
    user_id, email, before = rows(
        cluster,
        shard,
        "SELECT id, email, password_hash FROM users WHERE status = 'active'"
        " ORDER BY id DESC LIMIT 1",
    )[0]
    assert db.users.authenticate(email, SEED_PASSWORD) is not None
    after = rows(cluster, shard, "SELECT password_hash FROM users WHERE id = %s", (user_id,))[0][0]
    assert after != before
    assert f"m={db.settings.argon2_memory_kib}," in after


def test_rows_satisfy_the_shapes_the_schema_expects(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    for shard in shards(cluster):
        for (phone,) in rows(
            cluster, shard, "SELECT phone FROM user_profiles WHERE phone IS NOT NULL"
        ):
            assert PHONE.match(phone) and len(phone) <= 32
        for (email,) in rows(cluster, shard, "SELECT email FROM users"):
            assert email == email.lower().strip()
        for (code,) in rows(cluster, shard, "SELECT code FROM courses"):
            assert CODE.match(code)


def test_video_and_reading_lessons_have_their_content_documents(
    seeded: SeedReport, cluster: LocalCluster, db: Database
) -> None:
    shard = shards(cluster)[0]
    lessons = rows(
        cluster,
        shard,
        "SELECT id, course_id, lesson_type, content_id, content_status FROM course_lessons",
    )
    collection = db.content_store._gateway.collection(CourseContent)
    documents = {d["content_id"]: d for d in collection.find({}, {"_id": 0})}
    with_content = 0
    for lesson_id, course_id, kind, content_id, status in lessons:
        if kind in ("video", "reading"):
            assert status == "ready"
            document = documents[content_id]
            assert document["lesson_id"] == lesson_id
            assert document["course_id"] == course_id
            view = db.content.get(content_id)
            assert view.content_type == ("video" if kind == "video" else "document")
            with_content += 1
        else:
            assert (content_id, status) == (None, "none")
    assert with_content == len(documents) == seeded.content_documents > 0


def test_every_learner_has_preferences_at_the_small_scale(
    seeded: SeedReport, cluster: LocalCluster, db: Database
) -> None:
    assert seeded.preference_documents == 100
    shard = shards(cluster)[0]
    (user_id,) = rows(cluster, shard, "SELECT id FROM users WHERE role = 'student' LIMIT 1")[0]
    assert db.preferences.get(user_id).user_id == user_id


def test_reviews_are_skewed_positive(seeded: SeedReport, cluster: LocalCluster) -> None:
    ratings = [
        rating
        for shard in shards(cluster)
        for (rating,) in rows(cluster, shard, "SELECT rating FROM course_reviews")
    ]
    assert len(ratings) >= 10
    assert sum(ratings) / len(ratings) > 3.5
    assert Counter(ratings).most_common(1)[0][0] >= 4


def test_payments_are_completed_failed_and_refunded_with_their_invoices(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    kinds: Counter[tuple[str, str]] = Counter()
    numbers: list[str] = []
    for shard in shards(cluster):
        for kind, status, count in rows(
            cluster, shard, "SELECT type, status, count(*) FROM transactions GROUP BY 1, 2"
        ):
            kinds[(kind, status)] += count
        assert (
            scalar(
                cluster,
                shard,
                "SELECT count(*) FROM transactions t "
                "LEFT JOIN invoices i ON i.transaction_id = t.id "
                "WHERE (t.type = 'purchase' AND t.status IN ('completed', 'refunded')) "
                "<> (i.id IS NOT NULL)",
            )
            == 0
        )
        assert (
            scalar(
                cluster,
                shard,
                "SELECT count(*) FROM invoices i JOIN transactions t ON t.id = i.transaction_id "
                "WHERE i.subtotal <> t.amount OR i.tax <> round(t.amount * 0.10, 2) "
                "OR (i.status = 'void') <> (t.status = 'refunded')",
            )
            == 0
        )
        numbers += [n for (n,) in rows(cluster, shard, "SELECT invoice_number FROM invoices")]
        used = scalar(cluster, shard, "SELECT count(*) FROM invoices")
        last_value, is_called = rows(
            cluster, shard, "SELECT last_value, is_called FROM invoice_number_seq"
        )[0]
        assert (last_value if is_called else 0) == used
    assert kinds[("purchase", "completed")] > 0
    assert kinds[("purchase", "failed")] > 0
    assert kinds[("purchase", "refunded")] == kinds[("refund", "completed")] > 0
    assert len(numbers) == len(set(numbers))
    assert all(INVOICE.match(n) for n in numbers)


def test_triggers_are_enabled_again_after_the_load(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    for shard in shards(cluster):
        disabled = rows(
            cluster,
            shard,
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled = 'D'",
        )
        assert disabled == []


def test_the_platform_keeps_working_on_seeded_data(
    seeded: SeedReport, cluster: LocalCluster, db: Database
) -> None:
    shard = shards(cluster)[0]
    enrollment_id, lesson_id = rows(
        cluster,
        shard,
        "SELECT e.id, l.id FROM enrollments e JOIN course_lessons l ON l.course_id = e.course_id "
        "WHERE e.status = 'active' AND NOT EXISTS (SELECT 1 FROM lesson_progress p "
        "WHERE p.enrollment_id = e.id AND p.lesson_id = l.id AND p.completed) LIMIT 1",
    )[0]
    before = db.enrollments.get(enrollment_id).progress
    db.enrollments.complete_lesson(enrollment_id, lesson_id)
    assert db.enrollments.get(enrollment_id).progress > before


def _streaks(days: set[date]) -> tuple[int, int, date | None]:
    """(run ending at the last day, longest run, last day) of a set of UTC days."""
    longest = current = 0
    previous: date | None = None
    for day in sorted(days):
        current = current + 1 if previous is not None and day == previous + timedelta(1) else 1
        longest = max(longest, current)
        previous = day
    return current, longest, previous


def test_points_and_streaks_equal_a_recomputation_from_the_seeded_activity(
    seeded: SeedReport, cluster: LocalCluster
) -> None:
    for shard in shards(cluster):
        lessons = rows(
            cluster,
            shard,
            "SELECT DISTINCT e.user_id, lp.lesson_id FROM lesson_progress lp"
            " JOIN enrollments e ON e.id = lp.enrollment_id WHERE lp.completed",
        )
        courses = rows(
            cluster,
            shard,
            "SELECT DISTINCT user_id, course_id FROM enrollments WHERE status = 'completed'",
        )
        passed = rows(
            cluster,
            shard,
            "SELECT DISTINCT e.user_id, a.assessment_id FROM assessment_attempts a"
            " JOIN enrollments e ON e.id = a.enrollment_id WHERE a.passed",
        )
        reviews = rows(cluster, shard, "SELECT DISTINCT user_id, course_id FROM course_reviews")
        moments = rows(
            cluster,
            shard,
            "SELECT e.user_id, lp.completed_at FROM lesson_progress lp"
            " JOIN enrollments e ON e.id = lp.enrollment_id WHERE lp.completed"
            " UNION ALL SELECT e.user_id, a.submitted_at FROM assessment_attempts a"
            " JOIN enrollments e ON e.id = a.enrollment_id WHERE a.submitted_at IS NOT NULL",
        )
        expected: dict[uuid.UUID, list[int]] = {}
        for index, (pairs, event) in enumerate(
            (
                (lessons, "lesson_completed"),
                (courses, "course_completed"),
                (passed, "assessment_passed"),
                (reviews, "review_written"),
            )
        ):
            for user_id, _source in pairs:
                slot = expected.setdefault(user_id, [0, 0, 0, 0, 0])
                slot[0] += DEFAULT_POINTS[event]
                slot[1 + index] += 1
        days: dict[uuid.UUID, set[date]] = {}
        for user_id, at in moments:
            days.setdefault(user_id, set()).add(at.astimezone(UTC).date())
        for user_id, active in days.items():
            expected.setdefault(user_id, [0, 0, 0, 0, 0])[0] += DEFAULT_POINTS["streak_day"] * len(
                active
            )
        found = {
            r[0]: r[1:]
            for r in rows(
                cluster,
                shard,
                "SELECT user_id, points, lessons_completed, courses_completed,"
                " assessments_passed, reviews_written, streak_days, longest_streak,"
                " last_active_day FROM learner_points",
            )
        }
        assert len(found) > 0
        assert set(found) == set(expected)
        for user_id, figures in expected.items():
            streak = _streaks(days.get(user_id, set()))
            assert tuple(found[user_id]) == (*figures, *streak), user_id
