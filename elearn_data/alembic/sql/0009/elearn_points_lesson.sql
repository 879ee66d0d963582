-- AFTER INSERT OR UPDATE OF completed ON lesson_progress: a lesson completed pays
-- lesson_completed once per learner and lesson (source: the lesson id), so a
-- lesson completed, reset and completed again -- or completed again in a new
-- enrollment of the same course -- pays once; its UTC day is a streak day. The
-- event's time is the row's completed_at.
CREATE OR REPLACE FUNCTION elearn_points_lesson()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_user uuid;
    v_course uuid;
BEGIN
    IF NOT NEW.completed OR (TG_OP = 'UPDATE' AND OLD.completed) THEN
        RETURN NULL;
    END IF;
    SELECT e.user_id, e.course_id INTO v_user, v_course
    FROM enrollments e WHERE e.id = NEW.enrollment_id;
    PERFORM elearn_award_points(
        v_user, 'lesson_completed', NEW.lesson_id::text, v_course, NEW.completed_at
    );
    PERFORM elearn_record_active_day(v_user, NEW.completed_at);
    RETURN NULL;
END;
$$;
