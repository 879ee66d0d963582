"""Gamification of the seeded activity: the points ledger, summaries and badge awards.

The load runs with the tables' triggers off, so nothing is paid while rows are
copied. Once the raw rows are in, each shard derives, set-based and in the
seeding transaction, what the triggers of revision 0009 would have written for
that activity: one ledger row per paid event (the first completion of each
lesson, each completed course, the first pass of each assessment, each
reviewed course, each UTC day with a completed lesson or a submitted attempt)
at the event's own time and the shard's point values, each learner's summary
(points, counters, current and longest streak), and the awards of any badge
already defined. :data:`CHECKS` then verifies the result before the commit.
"""

from __future__ import annotations

from typing import Final

# Written by this module (not by the load): triggers off while it runs, reset by --reset.
DERIVED_TABLES: Final = ("points_ledger", "learner_points", "badge_awards")

LEDGER: Final = """
INSERT INTO points_ledger (user_id, event, source_id, course_id, points, awarded_at)
SELECT x.user_id, x.event, x.source_id, x.course_id, r.points, x.awarded_at
FROM (
    SELECT e.user_id, 'lesson_completed' AS event, lp.lesson_id::text AS source_id,
           min(e.course_id::text)::uuid AS course_id, min(lp.completed_at) AS awarded_at
    FROM lesson_progress lp JOIN enrollments e ON e.id = lp.enrollment_id
    WHERE lp.completed
    GROUP BY e.user_id, lp.lesson_id
    UNION ALL
    SELECT e.user_id, 'course_completed', e.course_id::text, e.course_id, min(e.completed_at)
    FROM enrollments e WHERE e.status = 'completed'
    GROUP BY e.user_id, e.course_id
    UNION ALL
    SELECT e.user_id, 'assessment_passed', a.assessment_id::text, min(e.course_id::text)::uuid,
           min(coalesce(a.graded_at, a.submitted_at))
    FROM assessment_attempts a JOIN enrollments e ON e.id = a.enrollment_id
    WHERE a.passed
    GROUP BY e.user_id, a.assessment_id
    UNION ALL
    SELECT v.user_id, 'review_written', v.course_id::text, v.course_id, min(v.created_at)
    FROM course_reviews v
    GROUP BY v.user_id, v.course_id
    UNION ALL
    SELECT d.user_id, 'streak_day', to_char(d.day, 'YYYY-MM-DD'), NULL, min(d.at)
    FROM (
        SELECT e.user_id, lp.completed_at AS at,
               (lp.completed_at AT TIME ZONE 'UTC')::date AS day
        FROM lesson_progress lp JOIN enrollments e ON e.id = lp.enrollment_id
        WHERE lp.completed
        UNION ALL
        SELECT e.user_id, a.submitted_at, (a.submitted_at AT TIME ZONE 'UTC')::date
        FROM assessment_attempts a JOIN enrollments e ON e.id = a.enrollment_id
        WHERE a.submitted_at IS NOT NULL
    ) d
    GROUP BY d.user_id, d.day
) x
JOIN point_rules r ON r.event = x.event
"""

# The summaries: the ledger's per-learner totals and counters, and the streaks (gaps
# and islands over the streak days), as elearn_record_active_day computes them.
SUMMARIES: Final = """
WITH totals AS (
    SELECT user_id, sum(points)::bigint AS points,
           count(*) FILTER (WHERE event = 'lesson_completed')::int AS lessons_completed,
           count(*) FILTER (WHERE event = 'course_completed')::int AS courses_completed,
           count(*) FILTER (WHERE event = 'assessment_passed')::int AS assessments_passed,
           count(*) FILTER (WHERE event = 'review_written')::int AS reviews_written
    FROM points_ledger GROUP BY user_id
),
islands AS (
    SELECT user_id, source_id::date AS day,
           source_id::date - (row_number() OVER (PARTITION BY user_id ORDER BY source_id))::int
               AS island
    FROM points_ledger WHERE event = 'streak_day'
),
runs AS (
    SELECT user_id, max(day) AS last_day, count(*)::int AS length
    FROM islands GROUP BY user_id, island
),
latest AS (
    SELECT DISTINCT ON (user_id) user_id, length, last_day
    FROM runs ORDER BY user_id, last_day DESC
),
longest AS (SELECT user_id, max(length) AS length FROM runs GROUP BY user_id)
INSERT INTO learner_points (
    user_id, points, lessons_completed, courses_completed, assessments_passed,
    reviews_written, streak_days, longest_streak, last_active_day
)
SELECT t.user_id, t.points, t.lessons_completed, t.courses_completed, t.assessments_passed,
       t.reviews_written, coalesce(l.length, 0), coalesce(g.length, 0), l.last_day
FROM totals t
LEFT JOIN latest l ON l.user_id = t.user_id
LEFT JOIN longest g ON g.user_id = t.user_id
"""

AWARDS: Final = """
INSERT INTO badge_awards (user_id, badge_id, awarded_at)
SELECT s.user_id, b.id, now()
FROM learner_points s JOIN badges b ON elearn_badge_metric(b.criterion, s) >= b.threshold
"""

# Offending rows (each query counts them); runner.CHECKS includes these.
CHECKS: Final[dict[str, str]] = {
    "learner_points totals": """
        WITH totals AS (
            SELECT user_id, sum(points)::bigint AS points,
                   count(*) FILTER (WHERE event = 'lesson_completed')::int AS lessons_completed,
                   count(*) FILTER (WHERE event = 'course_completed')::int AS courses_completed,
                   count(*) FILTER (WHERE event = 'assessment_passed')::int AS assessments_passed,
                   count(*) FILTER (WHERE event = 'review_written')::int AS reviews_written
            FROM points_ledger GROUP BY user_id
        )
        SELECT count(*) FROM learner_points s
        FULL JOIN totals t ON t.user_id = s.user_id
        WHERE s.user_id IS NULL OR t.user_id IS NULL
           OR (s.points, s.lessons_completed, s.courses_completed, s.assessments_passed,
               s.reviews_written)
              IS DISTINCT FROM (t.points, t.lessons_completed, t.courses_completed,
                                t.assessments_passed, t.reviews_written)
    """,
    "points_ledger lessons": """
        SELECT count(*) FROM (
            SELECT DISTINCT e.user_id, lp.lesson_id
            FROM lesson_progress lp JOIN enrollments e ON e.id = lp.enrollment_id
            WHERE lp.completed
        ) x
        WHERE NOT EXISTS (
            SELECT 1 FROM points_ledger l
            WHERE l.user_id = x.user_id AND l.event = 'lesson_completed'
              AND l.source_id = x.lesson_id::text
        )
    """,
    "learner_points streaks": """
        SELECT count(*) FROM learner_points s
        WHERE s.streak_days > s.longest_streak
           OR s.longest_streak > (
               SELECT count(*) FROM points_ledger l
               WHERE l.user_id = s.user_id AND l.event = 'streak_day')
           OR (s.last_active_day IS NULL) <> (s.longest_streak = 0)
    """,
}
