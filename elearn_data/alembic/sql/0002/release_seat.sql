-- Give one seat of a course back (never below zero); returns the seats taken.
CREATE OR REPLACE FUNCTION release_seat(p_course_id uuid)
RETURNS int
LANGUAGE plpgsql
AS $$
DECLARE
    v_taken int;
BEGIN
    UPDATE course_seats SET taken = greatest(taken - 1, 0)
    WHERE course_id = p_course_id
    RETURNING taken INTO v_taken;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404',
            MESSAGE = format('course %s has no seat ledger on this shard', p_course_id);
    END IF;
    RETURN v_taken;
END;
$$;
