-- This shard's part of a course's gradebook: one row per (enrollment,
-- published assessment of the course) -- one row with NULL assessment for an
-- enrollment of a course without any -- with the learner's name, the
-- enrollment's status and progress, the best percent of the learner's graded
-- or submitted attempts, how many attempts were made and whether one passed.
-- Every enrollment lives on its learner's shard, so the shards' rows never
-- overlap: the gradebook is their union.
CREATE OR REPLACE FUNCTION get_course_gradebook(p_course_id uuid)
RETURNS TABLE (
    enrollment_id uuid,
    user_id uuid,
    learner text,
    enrollment_status varchar,
    progress_percent numeric,
    assessment_id uuid,
    best_percent numeric,
    attempts int,
    passed boolean
)
LANGUAGE sql
STABLE
AS $$
    SELECT e.id, e.user_id, u.first_name || ' ' || u.last_name, e.status, e.progress_percent,
           a.id, t.best, coalesce(t.n, 0)::int, coalesce(t.passed, false)
    FROM enrollments e
    JOIN users u ON u.id = e.user_id
    LEFT JOIN assessments a ON a.course_id = e.course_id AND a.status = 'published'
    LEFT JOIN LATERAL (
        SELECT max(x.percent) FILTER (WHERE x.status <> 'in_progress') AS best,
               count(*) AS n,
               bool_or(coalesce(x.passed, false)) AS passed
        FROM assessment_attempts x
        WHERE x.enrollment_id = e.id AND x.assessment_id = a.id
    ) t ON true
    WHERE e.course_id = p_course_id
    ORDER BY e.id, a.created_at, a.id
$$;
