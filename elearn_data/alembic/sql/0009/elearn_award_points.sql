-- Pay one event to a learner, exactly once: the ledger's primary key (user_id,
-- event, source_id) makes a second payment of the same event a no-op, whatever
-- races (a concurrent insert of the same key waits for the first and then does
-- nothing). The points are the catalog's current value of the event
-- (point_rules). On a payment the learner's summary row is created or updated
-- in the same statement (points and the event's counter), which also takes the
-- summary row's lock: two events of one learner are serialized from here on.
-- Returns whether the event was paid now.
CREATE OR REPLACE FUNCTION elearn_award_points(
    p_user_id uuid,
    p_event text,
    p_source_id text,
    p_course_id uuid,
    p_at timestamptz
)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    v_points int;
    v_paid int;
BEGIN
    SELECT r.points INTO v_points FROM point_rules r WHERE r.event = p_event;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = format('unknown point event %s', p_event);
    END IF;
    INSERT INTO points_ledger (user_id, event, source_id, course_id, points, awarded_at)
    VALUES (p_user_id, p_event, p_source_id, p_course_id, v_points, coalesce(p_at, now()))
    ON CONFLICT (user_id, event, source_id) DO NOTHING;
    GET DIAGNOSTICS v_paid = ROW_COUNT;
    IF v_paid = 0 THEN
        RETURN false;
    END IF;
    INSERT INTO learner_points AS s (
        user_id, points, lessons_completed, courses_completed, assessments_passed,
        reviews_written
    )
    VALUES (
        p_user_id, v_points,
        (p_event = 'lesson_completed')::int,
        (p_event = 'course_completed')::int,
        (p_event = 'assessment_passed')::int,
        (p_event = 'review_written')::int
    )
    ON CONFLICT (user_id) DO UPDATE
    SET points = s.points + EXCLUDED.points,
        lessons_completed = s.lessons_completed + EXCLUDED.lessons_completed,
        courses_completed = s.courses_completed + EXCLUDED.courses_completed,
        assessments_passed = s.assessments_passed + EXCLUDED.assessments_passed,
        reviews_written = s.reviews_written + EXCLUDED.reviews_written,
        updated_at = now();
    RETURN true;
END;
$$;
