-- Published courses by THIS shard's live enrollment count (desc), then id; the
-- caller merges shards (sum per course, then top N). p_limit NULL = all.
CREATE OR REPLACE FUNCTION get_popular_courses(p_limit int DEFAULT 10)
RETURNS TABLE (
    course_id uuid,
    code varchar,
    title varchar,
    enrollment_count int,
    rating_sum bigint,
    rating_count int
)
LANGUAGE plpgsql
STABLE
AS $$
#variable_conflict use_column
BEGIN
    IF p_limit < 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = format('limit must not be negative: %s', p_limit);
    END IF;
    RETURN QUERY
    SELECT c.id, c.code, c.title, coalesce(s.enrollment_count, 0),
           coalesce(s.rating_sum, 0)::bigint, coalesce(s.rating_count, 0)
    FROM courses c
    LEFT JOIN course_stats s ON s.course_id = c.id
    WHERE c.status = 'published'
    ORDER BY coalesce(s.enrollment_count, 0) DESC, c.id
    LIMIT p_limit;
END;
$$;
