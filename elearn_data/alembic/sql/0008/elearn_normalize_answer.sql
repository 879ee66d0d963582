-- A short answer as it is compared: lower case, every whitespace character
-- removed ("  New   York " and "newyork" are the same answer).
CREATE OR REPLACE FUNCTION elearn_normalize_answer(p_text text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $$
    SELECT lower(regexp_replace(coalesce(p_text, ''), '[[:space:]]+', '', 'g'))
$$;
