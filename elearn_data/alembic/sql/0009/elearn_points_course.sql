-- AFTER INSERT OR UPDATE OF status ON enrollments: a course completed pays
-- course_completed once per learner and course (a completion that reverts and
-- completes again, or a second enrollment, pays nothing more). The event's time
-- is the row's completed_at.
CREATE OR REPLACE FUNCTION elearn_points_course()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.status <> 'completed' OR (TG_OP = 'UPDATE' AND OLD.status = 'completed') THEN
        RETURN NULL;
    END IF;
    PERFORM elearn_award_points(
        NEW.user_id, 'course_completed', NEW.course_id::text, NEW.course_id,
        coalesce(NEW.completed_at, now())
    );
    RETURN NULL;
END;
$$;
