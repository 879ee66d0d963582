-- A course with its category name, module count and THIS shard's partial
-- statistics (local_*); merge the partials over shards for global figures.
CREATE OR REPLACE FUNCTION get_course_details(p_course_id uuid)
RETURNS TABLE (
    course_id uuid,
    code varchar,
    title varchar,
    description text,
    instructor_id uuid,
    category_id uuid,
    category_name varchar,
    level varchar,
    price numeric,
    currency varchar,
    status varchar,
    max_enrollments int,
    duration_hours numeric,
    language varchar,
    lesson_count int,
    module_count int,
    published_at timestamptz,
    created_at timestamptz,
    updated_at timestamptz,
    local_enrollment_count int,
    local_active_count int,
    local_completed_count int,
    local_dropped_count int,
    local_rating_sum bigint,
    local_rating_count int
)
LANGUAGE plpgsql
STABLE
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT c.id, c.code, c.title, c.description, c.instructor_id, c.category_id, cat.name,
           c.level, c.price, c.currency, c.status, c.max_enrollments, c.duration_hours,
           c.language, c.lesson_count,
           (SELECT count(*)::int FROM course_modules m WHERE m.course_id = c.id),
           c.published_at, c.created_at, c.updated_at,
           coalesce(s.enrollment_count, 0), coalesce(s.active_count, 0),
           coalesce(s.completed_count, 0), coalesce(s.dropped_count, 0),
           coalesce(s.rating_sum, 0)::bigint, coalesce(s.rating_count, 0)
    FROM courses c
    LEFT JOIN course_categories cat ON cat.id = c.category_id
    LEFT JOIN course_stats s ON s.course_id = c.id
    WHERE c.id = p_course_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('course %s not found', p_course_id);
    END IF;
END;
$$;
