-- AFTER INSERT/UPDATE/DELETE ON course_reviews: keep rating_sum and
-- rating_count of the course's partials (a deleted review is taken out).
CREATE OR REPLACE FUNCTION elearn_course_rating_sync()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.course_id = OLD.course_id THEN
        PERFORM elearn_course_stats_add(NEW.course_id, 0, 0, 0, 0, NEW.rating - OLD.rating, 0);
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM elearn_course_stats_add(OLD.course_id, 0, 0, 0, 0, -OLD.rating, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM elearn_course_stats_add(NEW.course_id, 0, 0, 0, 0, NEW.rating, 1);
    END IF;
    RETURN NULL;
END;
$$;
