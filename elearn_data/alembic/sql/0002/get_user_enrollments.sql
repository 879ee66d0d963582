-- A learner's enrollments (optionally of one status), newest first.
CREATE OR REPLACE FUNCTION get_user_enrollments(p_user_id uuid, p_status text DEFAULT NULL)
RETURNS TABLE (
    enrollment_id uuid,
    course_id uuid,
    course_code varchar,
    course_title varchar,
    status varchar,
    progress_percent numeric,
    completed_lessons int,
    total_lessons int,
    enrolled_at timestamptz,
    completed_at timestamptz,
    dropped_at timestamptz,
    certificate_url varchar,
    certificate_issued_at timestamptz
)
LANGUAGE plpgsql
STABLE
AS $$
#variable_conflict use_column
DECLARE
    v_status text := lower(btrim(p_status));
BEGIN
    IF v_status IS NOT NULL AND v_status NOT IN ('active', 'completed', 'dropped') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format(
                'invalid enrollment status %L; valid statuses: active, completed, dropped',
                p_status
            );
    END IF;
    IF NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p_user_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'EL404', MESSAGE = format('user %s not found', p_user_id);
    END IF;
    RETURN QUERY
    SELECT e.id, e.course_id, c.code, c.title, e.status, e.progress_percent,
           e.completed_lessons, c.lesson_count, e.enrolled_at, e.completed_at, e.dropped_at,
           e.certificate_url, e.certificate_issued_at
    FROM enrollments e
    JOIN courses c ON c.id = e.course_id
    WHERE e.user_id = p_user_id AND (v_status IS NULL OR e.status = v_status)
    ORDER BY e.enrolled_at DESC, e.id DESC;
END;
$$;
