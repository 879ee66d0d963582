-- AFTER INSERT/UPDATE/DELETE ON course_lessons, once per statement (transition
-- tables new_lessons/old_lessons): keep courses.lesson_count, then recompute
-- progress_percent of the affected courses' live enrollments on this shard
-- (status unchanged). Catalog writes are rare; enrolling never gets here.
CREATE OR REPLACE FUNCTION elearn_course_lesson_count_sync()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_courses uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        WITH delta AS (
            SELECT course_id, count(*)::int AS n FROM new_lessons GROUP BY course_id
        ),
        changed AS (
            UPDATE courses c SET lesson_count = c.lesson_count + delta.n
            FROM delta WHERE c.id = delta.course_id
            RETURNING c.id
        )
        SELECT array_agg(id) INTO v_courses FROM changed;
    ELSIF TG_OP = 'DELETE' THEN
        WITH delta AS (
            SELECT course_id, count(*)::int AS n FROM old_lessons GROUP BY course_id
        ),
        changed AS (
            UPDATE courses c SET lesson_count = greatest(c.lesson_count - delta.n, 0)
            FROM delta WHERE c.id = delta.course_id
            RETURNING c.id
        )
        SELECT array_agg(id) INTO v_courses FROM changed;
    ELSE
        -- Lessons moved to another course.
        WITH moved AS (
            SELECT n.course_id AS new_course, o.course_id AS old_course
            FROM new_lessons n JOIN old_lessons o ON o.id = n.id
            WHERE n.course_id <> o.course_id
        ),
        delta AS (
            SELECT course_id, sum(n)::int AS n
            FROM (SELECT new_course AS course_id, 1 AS n FROM moved
                  UNION ALL
                  SELECT old_course, -1 FROM moved) d
            GROUP BY course_id
            HAVING sum(n) <> 0
        ),
        changed AS (
            UPDATE courses c SET lesson_count = greatest(c.lesson_count + delta.n, 0)
            FROM delta WHERE c.id = delta.course_id
            RETURNING c.id
        )
        SELECT array_agg(id) INTO v_courses FROM changed;
    END IF;
    IF v_courses IS NULL THEN
        RETURN NULL;
    END IF;

    UPDATE enrollments e
    SET progress_percent = CASE
        WHEN c.lesson_count > 0 THEN least(100, round(e.completed_lessons * 100.0 / c.lesson_count, 2))
        ELSE 0
    END
    FROM courses c
    WHERE c.id = e.course_id
      AND e.course_id = ANY (v_courses)
      AND e.status <> 'dropped'
      AND e.progress_percent IS DISTINCT FROM CASE
          WHEN c.lesson_count > 0 THEN least(100, round(e.completed_lessons * 100.0 / c.lesson_count, 2))
          ELSE 0
      END;
    RETURN NULL;
END;
$$;
