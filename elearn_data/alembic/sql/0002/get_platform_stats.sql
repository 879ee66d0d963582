-- Platform figures on THIS shard: courses and published_courses are catalog
-- counts (the same on every shard); the rest are this shard's partials.
-- enrollments counts every enrollment (dropped ones too); revenue is completed
-- purchases minus refunds, summed over currencies. One aggregate per table.
CREATE OR REPLACE FUNCTION get_platform_stats()
RETURNS TABLE (
    users bigint,
    students bigint,
    instructors bigint,
    courses bigint,
    published_courses bigint,
    enrollments bigint,
    active_enrollments bigint,
    completed_enrollments bigint,
    revenue numeric
)
LANGUAGE sql
STABLE
AS $$
    SELECT u.users, u.students, u.instructors, c.courses, c.published_courses,
           e.enrollments, e.active_enrollments, e.completed_enrollments, t.revenue
    FROM (
        SELECT count(*) AS users,
               count(*) FILTER (WHERE role = 'student') AS students,
               count(*) FILTER (WHERE role = 'instructor') AS instructors
        FROM users
    ) u,
    (
        SELECT count(*) AS courses,
               count(*) FILTER (WHERE status = 'published') AS published_courses
        FROM courses
    ) c,
    (
        SELECT count(*) AS enrollments,
               count(*) FILTER (WHERE status = 'active') AS active_enrollments,
               count(*) FILTER (WHERE status = 'completed') AS completed_enrollments
        FROM enrollments
    ) e,
    (
        SELECT coalesce(sum(CASE WHEN type = 'purchase' THEN amount ELSE -amount END), 0)
               AS revenue
        FROM transactions
        WHERE (type = 'purchase' AND status IN ('completed', 'refunded'))
           OR (type = 'refund' AND status = 'completed')
    ) t;
$$;
