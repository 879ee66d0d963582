-- Every lesson of an enrollment's course in order, with the learner's progress.
CREATE OR REPLACE FUNCTION get_course_progress(p_enrollment_id uuid)
RETURNS TABLE (
    lesson_id uuid,
    module_title varchar,
    module_order int,
    lesson_title varchar,
    lesson_order int,
    completed boolean,
    completed_at timestamptz,
    time_spent_minutes int
)
LANGUAGE plpgsql
STABLE
AS $$
#variable_conflict use_column
DECLARE
    v_course uuid;
BEGIN
    SELECT e.course_id INTO v_course FROM enrollments e WHERE e.id = p_enrollment_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('enrollment %s not found', p_enrollment_id);
    END IF;
    RETURN QUERY
    SELECT l.id, m.title, m.module_order, l.title, l.lesson_order,
           coalesce(p.completed, false), p.completed_at, coalesce(p.time_spent_minutes, 0)
    FROM course_lessons l
    JOIN course_modules m ON m.id = l.module_id
    LEFT JOIN lesson_progress p ON p.enrollment_id = p_enrollment_id AND p.lesson_id = l.id
    WHERE l.course_id = v_course
    ORDER BY m.module_order, l.lesson_order;
END;
$$;
