-- A new id for a reference (catalog) row, optionally naming its home region.
CREATE OR REPLACE FUNCTION elearn_new_reference_id(p_home text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    IF p_home IS NULL THEN
        RETURN elearn_build_id(8);
    END IF;
    RETURN elearn_build_id(8 | elearn_region_code(p_home));
END;
$$;
