-- The id code table of elearn_data.ids.REGION_CODES as jsonb (region name -> 4-bit code).
-- Revision 0011 writes it from the Python table at migration time: the table arrives
-- as the bound parameter below, quoted by the driver, never formatted into the text.
CREATE OR REPLACE FUNCTION elearn_region_codes()
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
RETURN CAST(:codes AS jsonb);
