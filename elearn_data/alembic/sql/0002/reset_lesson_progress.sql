-- Un-complete a lesson of an enrollment (time spent is kept). The progress
-- trigger reverts a completed enrollment to active and clears its certificate.
CREATE OR REPLACE FUNCTION reset_lesson_progress(p_enrollment_id uuid, p_lesson_id uuid)
RETURNS TABLE (
    progress_percent numeric,
    completed_lessons int,
    total_lessons int,
    status varchar
)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_status text;
    v_course uuid;
BEGIN
    SELECT e.status, e.course_id INTO v_status, v_course
    FROM enrollments e WHERE e.id = p_enrollment_id
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('enrollment %s not found', p_enrollment_id);
    END IF;
    IF v_status = 'dropped' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409', MESSAGE = format('enrollment %s is dropped', p_enrollment_id);
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM course_lessons l WHERE l.id = p_lesson_id AND l.course_id = v_course
    ) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('lesson %s is not part of course %s', p_lesson_id, v_course);
    END IF;

    UPDATE lesson_progress lp
    SET completed = false, completed_at = NULL, last_accessed_at = now()
    WHERE lp.enrollment_id = p_enrollment_id AND lp.lesson_id = p_lesson_id AND lp.completed;

    RETURN QUERY
    SELECT e.progress_percent, e.completed_lessons, c.lesson_count, e.status
    FROM enrollments e
    JOIN courses c ON c.id = e.course_id
    WHERE e.id = p_enrollment_id;
END;
$$;
