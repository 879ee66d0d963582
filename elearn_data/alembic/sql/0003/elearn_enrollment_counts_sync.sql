-- AFTER INSERT/UPDATE OF status, course_id/DELETE ON enrollments: keep the
-- enrollment counts of the course's partials (enrollment_count = active +
-- completed). One row update per enrollment change, whatever the course size.
CREATE OR REPLACE FUNCTION elearn_enrollment_counts_sync()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    o_active int := 0;
    o_completed int := 0;
    o_dropped int := 0;
    n_active int := 0;
    n_completed int := 0;
    n_dropped int := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        o_active := (OLD.status = 'active')::int;
        o_completed := (OLD.status = 'completed')::int;
        o_dropped := (OLD.status = 'dropped')::int;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        n_active := (NEW.status = 'active')::int;
        n_completed := (NEW.status = 'completed')::int;
        n_dropped := (NEW.status = 'dropped')::int;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.course_id = OLD.course_id THEN
        PERFORM elearn_course_stats_add(
            NEW.course_id,
            (n_active + n_completed) - (o_active + o_completed),
            n_active - o_active,
            n_completed - o_completed,
            n_dropped - o_dropped,
            0, 0
        );
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM elearn_course_stats_add(
            OLD.course_id, -(o_active + o_completed), -o_active, -o_completed, -o_dropped, 0, 0
        );
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM elearn_course_stats_add(
            NEW.course_id, n_active + n_completed, n_active, n_completed, n_dropped, 0, 0
        );
    END IF;
    RETURN NULL;
END;
$$;
