-- Open an attempt of an enrollment at an assessment of its course; returns the
-- attempt id (p_attempt_id NULL: a new id of the enrollment's region). The
-- enrollment row is locked first (FOR NO KEY UPDATE, as every progress call
-- does), so concurrent starts of one enrollment run one after another and the
-- attempt limit and the one-open-attempt rule hold under concurrency; the
-- partial unique index uq_assessment_attempts_open backs the second rule.
CREATE OR REPLACE FUNCTION start_assessment_attempt(
    p_attempt_id uuid,
    p_enrollment_id uuid,
    p_assessment_id uuid
)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_enrollment_status text;
    v_course uuid;
    v_a_course uuid;
    v_a_status text;
    v_max int;
    v_limit int;
    v_used int;
    v_open int;
    v_id uuid := p_attempt_id;
BEGIN
    SELECT status, course_id INTO v_enrollment_status, v_course
    FROM enrollments WHERE id = p_enrollment_id
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('enrollment %s not found', p_enrollment_id);
    END IF;
    SELECT course_id, status, max_attempts, time_limit_minutes
    INTO v_a_course, v_a_status, v_max, v_limit
    FROM assessments WHERE id = p_assessment_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('assessment %s not found', p_assessment_id);
    END IF;
    IF v_a_course <> v_course THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('assessment %s is not part of course %s', p_assessment_id, v_course);
    END IF;
    IF v_enrollment_status = 'dropped' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409', MESSAGE = format('enrollment %s is dropped', p_enrollment_id);
    END IF;
    IF v_a_status <> 'published' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('assessment %s is %s, not published', p_assessment_id, v_a_status);
    END IF;
    SELECT count(*), max(attempt_number) FILTER (WHERE status = 'in_progress')
    INTO v_used, v_open
    FROM assessment_attempts
    WHERE enrollment_id = p_enrollment_id AND assessment_id = p_assessment_id;
    IF v_open IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('attempt %s of assessment %s is still open: submit it first',
                             v_open, p_assessment_id);
    END IF;
    IF v_max IS NOT NULL AND v_used >= v_max THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('no attempts left at assessment %s: %s of %s used',
                             p_assessment_id, v_used, v_max);
    END IF;
    IF v_id IS NULL THEN
        v_id := elearn_build_id(elearn_id_code(p_enrollment_id));
    ELSIF elearn_id_code(v_id) IS DISTINCT FROM elearn_id_code(p_enrollment_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('attempt id %s does not carry the region of enrollment %s',
                             v_id, p_enrollment_id);
    END IF;
    INSERT INTO assessment_attempts (
        id, enrollment_id, assessment_id, attempt_number, status, started_at, deadline_at
    )
    VALUES (
        v_id, p_enrollment_id, p_assessment_id, v_used + 1, 'in_progress', now(),
        CASE WHEN v_limit IS NULL THEN NULL ELSE now() + make_interval(mins => v_limit) END
    );
    RETURN v_id;
END;
$$;
