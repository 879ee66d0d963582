-- Complete a lesson of an enrollment (upsert of its progress row): completing
-- twice counts once, time spent accumulates. The progress trigger on
-- lesson_progress maintains the enrollment; its new state is returned.
CREATE OR REPLACE FUNCTION mark_lesson_complete(
    p_enrollment_id uuid,
    p_lesson_id uuid,
    p_time_spent_minutes int DEFAULT 0
)
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
    v_minutes int := coalesce(p_time_spent_minutes, 0);
    v_status text;
    v_course uuid;
BEGIN
    IF v_minutes < 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('time spent must not be negative: %s', p_time_spent_minutes);
    END IF;
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

    INSERT INTO lesson_progress AS lp (
        enrollment_id, lesson_id, completed, completed_at, time_spent_minutes, last_accessed_at
    )
    VALUES (p_enrollment_id, p_lesson_id, true, now(), v_minutes, now())
    ON CONFLICT (enrollment_id, lesson_id) DO UPDATE
    SET completed = true,
        completed_at = coalesce(lp.completed_at, EXCLUDED.completed_at),
        time_spent_minutes = lp.time_spent_minutes + EXCLUDED.time_spent_minutes,
        last_accessed_at = EXCLUDED.last_accessed_at;

    RETURN QUERY
    SELECT e.progress_percent, e.completed_lessons, c.lesson_count, e.status
    FROM enrollments e
    JOIN courses c ON c.id = e.course_id
    WHERE e.id = p_enrollment_id;
END;
$$;
