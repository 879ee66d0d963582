-- AFTER INSERT OR UPDATE OF submitted_at, passed ON assessment_attempts: a
-- submitted attempt makes its UTC day (submitted_at) a streak day; a passed
-- attempt pays assessment_passed once per learner and assessment (a second
-- passed attempt, or a regrade that fails and passes again, pays nothing more).
-- The pass's time is graded_at.
CREATE OR REPLACE FUNCTION elearn_points_attempt()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    v_user uuid;
    v_course uuid;
    v_submitted boolean;
    v_passed boolean;
BEGIN
    v_submitted := NEW.submitted_at IS NOT NULL
        AND (TG_OP = 'INSERT' OR OLD.submitted_at IS NULL);
    v_passed := coalesce(NEW.passed, false)
        AND (TG_OP = 'INSERT' OR NOT coalesce(OLD.passed, false));
    IF NOT (v_submitted OR v_passed) THEN
        RETURN NULL;
    END IF;
    SELECT e.user_id, e.course_id INTO v_user, v_course
    FROM enrollments e WHERE e.id = NEW.enrollment_id;
    IF v_submitted THEN
        PERFORM elearn_record_active_day(v_user, NEW.submitted_at);
    END IF;
    IF v_passed THEN
        PERFORM elearn_award_points(
            v_user, 'assessment_passed', NEW.assessment_id::text, v_course,
            coalesce(NEW.graded_at, NEW.submitted_at, now())
        );
    END IF;
    RETURN NULL;
END;
$$;
