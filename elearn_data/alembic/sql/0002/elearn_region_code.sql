-- The 4-bit region code stored in ids (the same codes as elearn_data/ids.py).
CREATE OR REPLACE FUNCTION elearn_region_code(p_region text)
RETURNS int
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
    v_code int;
BEGIN
    v_code := CASE lower(btrim(p_region))
        WHEN 'north_america' THEN 1
        WHEN 'south_america' THEN 2
        WHEN 'europe' THEN 3
        WHEN 'africa' THEN 4
        WHEN 'asia' THEN 5
        WHEN 'oceania' THEN 6
    END;
    IF v_code IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format(
                'unknown region %L; valid regions: north_america, south_america, europe, '
                'africa, asia, oceania',
                p_region
            );
    END IF;
    RETURN v_code;
END;
$$;
