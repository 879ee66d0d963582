-- Add deltas to this shard's partials of one course (course_stats). The row
-- exists for every course (trigger on courses); should it be missing, it is
-- rebuilt from this shard's rows, which already include the change counted.
CREATE OR REPLACE FUNCTION elearn_course_stats_add(
    p_course_id uuid,
    p_enrollments int,
    p_active int,
    p_completed int,
    p_dropped int,
    p_rating_sum bigint,
    p_rating_count int
)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_course_id IS NULL
        OR (p_enrollments = 0 AND p_active = 0 AND p_completed = 0 AND p_dropped = 0
            AND p_rating_sum = 0 AND p_rating_count = 0)
    THEN
        RETURN;
    END IF;
    UPDATE course_stats
    SET enrollment_count = enrollment_count + p_enrollments,
        active_count = active_count + p_active,
        completed_count = completed_count + p_completed,
        dropped_count = dropped_count + p_dropped,
        rating_sum = rating_sum + p_rating_sum,
        rating_count = rating_count + p_rating_count
    WHERE course_id = p_course_id;
    IF FOUND THEN
        RETURN;
    END IF;
    INSERT INTO course_stats (
        course_id, enrollment_count, active_count, completed_count, dropped_count, rating_sum,
        rating_count
    )
    SELECT c.id, e.live, e.active, e.completed, e.dropped, r.rating_sum, r.rating_count
    FROM courses c,
         (SELECT count(*) FILTER (WHERE status <> 'dropped')::int AS live,
                 count(*) FILTER (WHERE status = 'active')::int AS active,
                 count(*) FILTER (WHERE status = 'completed')::int AS completed,
                 count(*) FILTER (WHERE status = 'dropped')::int AS dropped
          FROM enrollments WHERE course_id = p_course_id) e,
         (SELECT coalesce(sum(rating), 0)::bigint AS rating_sum, count(*)::int AS rating_count
          FROM course_reviews WHERE course_id = p_course_id) r
    WHERE c.id = p_course_id
    ON CONFLICT (course_id) DO NOTHING;
    IF NOT FOUND THEN
        -- A concurrent transaction rebuilt the row first (without our change), or
        -- the course is gone (then nothing is updated).
        UPDATE course_stats
        SET enrollment_count = enrollment_count + p_enrollments,
            active_count = active_count + p_active,
            completed_count = completed_count + p_completed,
            dropped_count = dropped_count + p_dropped,
            rating_sum = rating_sum + p_rating_sum,
            rating_count = rating_count + p_rating_count
        WHERE course_id = p_course_id;
    END IF;
END;
$$;
