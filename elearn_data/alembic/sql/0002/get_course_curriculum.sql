-- Modules and lessons of a course in order; a module without lessons appears
-- once with NULL lesson columns.
CREATE OR REPLACE FUNCTION get_course_curriculum(p_course_id uuid)
RETURNS TABLE (
    module_id uuid,
    module_title varchar,
    module_order int,
    lesson_id uuid,
    lesson_title varchar,
    lesson_order int,
    lesson_type varchar,
    content_id varchar,
    content_status varchar,
    duration_minutes int,
    is_preview boolean
)
LANGUAGE plpgsql
STABLE
AS $$
#variable_conflict use_column
BEGIN
    IF NOT EXISTS (SELECT 1 FROM courses c WHERE c.id = p_course_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('course %s not found', p_course_id);
    END IF;
    RETURN QUERY
    SELECT m.id, m.title, m.module_order, l.id, l.title, l.lesson_order, l.lesson_type,
           l.content_id, l.content_status, l.duration_minutes, l.is_preview
    FROM course_modules m
    LEFT JOIN course_lessons l ON l.module_id = m.id
    WHERE m.course_id = p_course_id
    ORDER BY m.module_order, l.lesson_order;
END;
$$;
