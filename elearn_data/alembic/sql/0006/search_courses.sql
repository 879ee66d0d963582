-- Full-text search over published courses (websearch syntax), best ts_rank_cd
-- first; a NULL or blank query lists every published course, newest first. The
-- query is data: websearch_to_tsquery never raises a syntax error, and only its
-- first 1000 characters are used.
--
-- courses.search_vector holds the title and description parsed with the
-- `english` configuration (stemmed, stop words dropped) and the code parsed with
-- `simple` (lower-cased, unstemmed: "AWS-101" -> 'aws-101', 'aws', '101'). The
-- query is therefore parsed both ways and either reading may match: `english`
-- finds words of the title and description, `simple` finds a course by its code
-- (parsed with `english` alone, "AWS-101" asks for the stem 'aw', which the
-- code's `simple` lexemes never contain).
CREATE OR REPLACE FUNCTION search_courses(
    p_query text DEFAULT NULL,
    p_category_id uuid DEFAULT NULL,
    p_level text DEFAULT NULL,
    p_max_price numeric DEFAULT NULL,
    p_limit int DEFAULT 20
)
RETURNS TABLE (course_id uuid, rank real)
LANGUAGE plpgsql
STABLE
-- "query contains only stop words" notices are not the caller's concern.
SET client_min_messages = warning
AS $$
#variable_conflict use_column
DECLARE
    v_level text := lower(btrim(p_level));
    v_query tsquery;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 100 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('limit must be between 1 and 100: %s', coalesce(p_limit::text, 'NULL'));
    END IF;
    IF v_level IS NOT NULL AND v_level NOT IN ('beginner', 'intermediate', 'advanced') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format(
                'invalid level %L; valid levels: beginner, intermediate, advanced', p_level
            );
    END IF;
    IF p_max_price < 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = format('max price must not be negative: %s', p_max_price);
    END IF;

    IF p_query IS NULL OR p_query ~ '^[[:space:]]*$' THEN
        RETURN QUERY
        SELECT c.id, 0::real
        FROM courses c
        WHERE c.status = 'published'
          AND (p_category_id IS NULL OR c.category_id = p_category_id)
          AND (v_level IS NULL OR c.level = v_level)
          AND (p_max_price IS NULL OR c.price <= p_max_price)
        ORDER BY c.published_at DESC, c.id
        LIMIT p_limit;
        RETURN;
    END IF;

    v_query := websearch_to_tsquery('english', left(p_query, 1000))
            || websearch_to_tsquery('simple', left(p_query, 1000));
    RETURN QUERY
    SELECT c.id, ts_rank_cd(c.search_vector, v_query)
    FROM courses c
    WHERE c.status = 'published'
      AND c.search_vector @@ v_query
      AND (p_category_id IS NULL OR c.category_id = p_category_id)
      AND (v_level IS NULL OR c.level = v_level)
      AND (p_max_price IS NULL OR c.price <= p_max_price)
    ORDER BY 2 DESC, c.published_at DESC, c.id
    LIMIT p_limit;
END;
$$;
