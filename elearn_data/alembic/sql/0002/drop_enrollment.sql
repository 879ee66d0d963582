-- Drop an enrollment at p_at; returns its course id (the caller releases the
-- seat on the course's home shard). A certificate is withdrawn with it.
CREATE OR REPLACE FUNCTION drop_enrollment(p_enrollment_id uuid, p_at timestamptz DEFAULT now())
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_course uuid;
    v_status text;
BEGIN
    SELECT course_id, status INTO v_course, v_status
    FROM enrollments WHERE id = p_enrollment_id
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('enrollment %s not found', p_enrollment_id);
    END IF;
    IF v_status = 'dropped' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('enrollment %s is already dropped', p_enrollment_id);
    END IF;
    UPDATE enrollments
    SET status = 'dropped',
        dropped_at = coalesce(p_at, now()),
        certificate_url = NULL,
        certificate_issued_at = NULL
    WHERE id = p_enrollment_id;
    RETURN v_course;
END;
$$;
