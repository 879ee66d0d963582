-- The 4-bit region code of one of our ids (1..6 owner region, 8 | home for a
-- reference id); NULL for a UUID we did not issue (version, variant or tag differ).
CREATE OR REPLACE FUNCTION elearn_id_code(p_id uuid)
RETURNS int
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    v_bytes bytea;
BEGIN
    IF p_id IS NULL THEN
        RETURN NULL;
    END IF;
    v_bytes := uuid_send(p_id);
    IF (get_byte(v_bytes, 6) >> 4) <> 8
        OR (get_byte(v_bytes, 8) >> 6) <> 2
        OR (((get_byte(v_bytes, 8) & 3) << 8) | get_byte(v_bytes, 9)) <> 737  -- tag 0x2E1
    THEN
        RETURN NULL;
    END IF;
    RETURN (get_byte(v_bytes, 8) >> 2) & 15;
END;
$$;
