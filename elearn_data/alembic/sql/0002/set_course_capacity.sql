-- Change the capacity of a course's seat ledger (NULL = unlimited); never below
-- the seats already taken. courses.max_enrollments is catalog data, written by
-- the application on every shard.
CREATE OR REPLACE FUNCTION set_course_capacity(p_course_id uuid, p_capacity int)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_taken int;
BEGIN
    IF p_capacity <= 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = format('capacity must be positive: %s', p_capacity);
    END IF;
    UPDATE course_seats SET capacity = p_capacity
    WHERE course_id = p_course_id AND (p_capacity IS NULL OR taken <= p_capacity);
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT taken INTO v_taken FROM course_seats WHERE course_id = p_course_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404',
            MESSAGE = format('course %s has no seat ledger on this shard', p_course_id);
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'EL400',
        MESSAGE = format(
            'capacity %s is below the %s seats already taken in course %s',
            p_capacity, v_taken, p_course_id
        );
END;
$$;
