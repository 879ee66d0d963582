-- An instructor's figures on THIS shard: courses is a catalog count (the same on
-- every shard); the rest are this shard's partials, to be summed over shards
-- (active_students too: a learner lives on one shard). Each table is aggregated
-- on its own, so no join multiplies another table's rows (the reference
-- design's revenue was inflated by joining enrollments, reviews and payments).
-- Revenue is completed purchases minus refunds, summed over currencies.
CREATE OR REPLACE FUNCTION get_instructor_stats(p_instructor_id uuid)
RETURNS TABLE (
    courses bigint,
    enrollments bigint,
    active_students bigint,
    rating_sum bigint,
    rating_count bigint,
    revenue numeric
)
LANGUAGE sql
STABLE
AS $$
    WITH taught AS (
        SELECT c.id FROM courses c WHERE c.instructor_id = p_instructor_id
    ),
    enrolled AS (
        SELECT count(*) FILTER (WHERE e.status <> 'dropped') AS enrollments,
               count(DISTINCT e.user_id) FILTER (WHERE e.status = 'active') AS active_students
        FROM enrollments e
        WHERE e.course_id IN (SELECT id FROM taught)
    ),
    rated AS (
        SELECT coalesce(sum(r.rating), 0)::bigint AS rating_sum, count(*) AS rating_count
        FROM course_reviews r
        WHERE r.course_id IN (SELECT id FROM taught)
    ),
    paid AS (
        SELECT coalesce(sum(CASE WHEN t.type = 'purchase' THEN t.amount ELSE -t.amount END), 0)
               AS revenue
        FROM transactions t
        WHERE t.course_id IN (SELECT id FROM taught)
          AND ((t.type = 'purchase' AND t.status IN ('completed', 'refunded'))
               OR (t.type = 'refund' AND t.status = 'completed'))
    )
    SELECT (SELECT count(*) FROM taught), enrolled.enrollments, enrolled.active_students,
           rated.rating_sum, rated.rating_count, paid.revenue
    FROM enrolled, rated, paid;
$$;
