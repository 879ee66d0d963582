-- A new id with the given 4-bit region code, in the bit layout of
-- elearn_data/ids.py: 48-bit unix ms | version 8 | 12-bit counter (random here)
-- | variant 0b10 | 4-bit code | 10-bit tag 0x2E1 | 48 random bits.
CREATE OR REPLACE FUNCTION elearn_build_id(p_code int)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_ms bigint := floor(extract(epoch FROM clock_timestamp()) * 1000);
    -- A v4 UUID: hex digits 1-12 and 14-16 are random.
    v_random text := replace(gen_random_uuid()::text, '-', '');
BEGIN
    IF p_code IS NULL OR p_code < 0 OR p_code > 15 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = format('invalid id region code %s', p_code);
    END IF;
    RETURN (
        lpad(to_hex(v_ms), 12, '0')
        || '8' || substr(v_random, 14, 3)
        || lpad(to_hex(128 | (p_code << 2) | 2), 2, '0')
        || 'e1'
        || substr(v_random, 1, 12)
    )::uuid;
END;
$$;
