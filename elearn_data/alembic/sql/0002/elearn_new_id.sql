-- A new id for a row owned by p_region (decodes with elearn_data.ids.decode).
CREATE OR REPLACE FUNCTION elearn_new_id(p_region text)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    RETURN elearn_build_id(elearn_region_code(p_region));
END;
$$;
