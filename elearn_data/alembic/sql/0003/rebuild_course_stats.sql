-- Recompute this shard's partials (course_stats) from its rows, for one course
-- or all (NULL); returns the number of rows written. A repair tool (and the
-- backfill of revision 0003): run it when no enrollment or review is written.
CREATE OR REPLACE FUNCTION rebuild_course_stats(p_course_id uuid DEFAULT NULL)
RETURNS int
LANGUAGE plpgsql
AS $$
DECLARE
    v_rows int;
BEGIN
    INSERT INTO course_stats AS s (
        course_id, enrollment_count, active_count, completed_count, dropped_count, rating_sum,
        rating_count
    )
    SELECT c.id, coalesce(e.live, 0), coalesce(e.active, 0), coalesce(e.completed, 0),
           coalesce(e.dropped, 0), coalesce(r.rating_sum, 0), coalesce(r.rating_count, 0)
    FROM courses c
    LEFT JOIN (
        SELECT course_id,
               count(*) FILTER (WHERE status <> 'dropped')::int AS live,
               count(*) FILTER (WHERE status = 'active')::int AS active,
               count(*) FILTER (WHERE status = 'completed')::int AS completed,
               count(*) FILTER (WHERE status = 'dropped')::int AS dropped
        FROM enrollments
        WHERE p_course_id IS NULL OR course_id = p_course_id
        GROUP BY course_id
    ) e ON e.course_id = c.id
    LEFT JOIN (
        SELECT course_id, sum(rating)::bigint AS rating_sum, count(*)::int AS rating_count
        FROM course_reviews
        WHERE p_course_id IS NULL OR course_id = p_course_id
        GROUP BY course_id
    ) r ON r.course_id = c.id
    WHERE p_course_id IS NULL OR c.id = p_course_id
    ON CONFLICT (course_id) DO UPDATE
    SET enrollment_count = EXCLUDED.enrollment_count,
        active_count = EXCLUDED.active_count,
        completed_count = EXCLUDED.completed_count,
        dropped_count = EXCLUDED.dropped_count,
        rating_sum = EXCLUDED.rating_sum,
        rating_count = EXCLUDED.rating_count;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END;
$$;
