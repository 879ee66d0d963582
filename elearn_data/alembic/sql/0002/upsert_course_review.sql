-- Create or update the one review of an enrollment; returns the review's id
-- (the existing one on an update). Safe under concurrency: INSERT ... ON
-- CONFLICT on the enrollment's unique key.
CREATE OR REPLACE FUNCTION upsert_course_review(
    p_review_id uuid,
    p_enrollment_id uuid,
    p_rating int,
    p_text text DEFAULT NULL
)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_user uuid;
    v_course uuid;
    v_status text;
    v_region text;
    v_id uuid := p_review_id;
    v_result uuid;
BEGIN
    IF p_rating IS NULL OR p_rating < 1 OR p_rating > 5 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format(
                'rating must be between 1 and 5: %s', coalesce(p_rating::text, 'NULL')
            );
    END IF;
    IF length(p_text) > 5000 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format(
                'review text is too long: %s characters (at most 5000)', length(p_text)
            );
    END IF;
    SELECT e.user_id, e.course_id, e.status, u.region
    INTO v_user, v_course, v_status, v_region
    FROM enrollments e
    JOIN users u ON u.id = e.user_id
    WHERE e.id = p_enrollment_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('enrollment %s not found', p_enrollment_id);
    END IF;
    IF v_status = 'dropped' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('enrollment %s is dropped and cannot be reviewed', p_enrollment_id);
    END IF;
    IF v_id IS NULL THEN
        v_id := elearn_new_id(v_region);
    ELSIF elearn_id_code(v_id) IS DISTINCT FROM elearn_region_code(v_region) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('review id %s does not carry the learner''s region %s', v_id, v_region);
    END IF;

    INSERT INTO course_reviews AS r (id, enrollment_id, user_id, course_id, rating, review_text)
    VALUES (v_id, p_enrollment_id, v_user, v_course, p_rating, p_text)
    ON CONFLICT (enrollment_id) DO UPDATE
    SET rating = EXCLUDED.rating, review_text = EXCLUDED.review_text
    RETURNING r.id INTO v_result;
    RETURN v_result;
END;
$$;
