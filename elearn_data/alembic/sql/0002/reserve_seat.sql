-- Take one seat of a course in its ledger (home shard); returns the seats taken
-- afterwards. One conditional UPDATE: concurrent callers queue on the row and
-- re-check the condition, so taken never exceeds capacity (NULL = unlimited).
CREATE OR REPLACE FUNCTION reserve_seat(p_course_id uuid)
RETURNS int
LANGUAGE plpgsql
AS $$
DECLARE
    v_taken int;
    v_capacity int;
BEGIN
    UPDATE course_seats SET taken = taken + 1
    WHERE course_id = p_course_id AND (capacity IS NULL OR taken < capacity)
    RETURNING taken INTO v_taken;
    IF FOUND THEN
        RETURN v_taken;
    END IF;
    SELECT capacity, taken INTO v_capacity, v_taken FROM course_seats WHERE course_id = p_course_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404',
            MESSAGE = format('course %s has no seat ledger on this shard', p_course_id);
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'EL410',
        MESSAGE = format(
            'course %s is full: %s of %s seats taken', p_course_id, v_taken, v_capacity
        );
END;
$$;
