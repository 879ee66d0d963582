-- The learner's-shard part of an enrollment: checks and the enrollment row;
-- returns its id (p_enrollment_id NULL: a new id of the learner's region). No
-- lesson_progress rows are created (progress rows appear on first activity), and
-- the seat is reserved separately on the course's home shard (reserve_seat).
CREATE OR REPLACE FUNCTION enroll_user(p_enrollment_id uuid, p_user_id uuid, p_course_id uuid)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_user_status text;
    v_region text;
    v_course_status text;
    v_id uuid := p_enrollment_id;
    v_constraint text;
BEGIN
    SELECT status, region INTO v_user_status, v_region FROM users WHERE id = p_user_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'EL404', MESSAGE = format('user %s not found', p_user_id);
    END IF;
    SELECT status INTO v_course_status FROM courses WHERE id = p_course_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('course %s not found', p_course_id);
    END IF;
    IF v_user_status <> 'active' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('user %s is %s and cannot enroll', p_user_id, v_user_status);
    END IF;
    IF v_course_status <> 'published' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('course %s is %s, not published', p_course_id, v_course_status);
    END IF;
    IF v_id IS NULL THEN
        v_id := elearn_new_id(v_region);
    ELSIF elearn_id_code(v_id) IS DISTINCT FROM elearn_region_code(v_region) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format(
                'enrollment id %s does not carry the learner''s region %s', v_id, v_region
            );
    END IF;
    IF EXISTS (
        SELECT 1 FROM enrollments
        WHERE user_id = p_user_id AND course_id = p_course_id AND status <> 'dropped'
    ) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL411',
            MESSAGE = format('user %s is already enrolled in course %s', p_user_id, p_course_id);
    END IF;
    BEGIN
        INSERT INTO enrollments (id, user_id, course_id) VALUES (v_id, p_user_id, p_course_id);
    EXCEPTION WHEN unique_violation THEN
        -- A concurrent enrollment of the same learner won the race.
        GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
        IF v_constraint = 'uq_enrollments_user_id_course_id_live' THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL411',
                MESSAGE = format(
                    'user %s is already enrolled in course %s', p_user_id, p_course_id
                );
        END IF;
        RAISE;
    END;
    RETURN v_id;
END;
$$;
