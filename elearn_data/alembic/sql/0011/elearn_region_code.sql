-- The 4-bit region code stored in ids, from the one code table (elearn_data.ids.REGION_CODES,
-- written into elearn_region_codes() by revision 0011).
CREATE OR REPLACE FUNCTION elearn_region_code(p_region text)
RETURNS int
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    v_code int;
BEGIN
    v_code := (elearn_region_codes() ->> lower(btrim(p_region)))::int;
    IF v_code IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format(
                'unknown region %L; valid regions: %s',
                p_region,
                (
                    SELECT string_agg(c.key, ', ' ORDER BY c.value::int)
                    FROM jsonb_each_text(elearn_region_codes()) AS c
                )
            );
    END IF;
    RETURN v_code;
END;
$$;
