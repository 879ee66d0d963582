-- AFTER INSERT ON courses: every course gets this shard's partials row.
CREATE OR REPLACE FUNCTION elearn_course_stats_init()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO course_stats (course_id) VALUES (NEW.id) ON CONFLICT (course_id) DO NOTHING;
    RETURN NULL;
END;
$$;
