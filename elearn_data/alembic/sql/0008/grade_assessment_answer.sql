-- Grade one answer of a submitted attempt by hand (an essay, or an override of
-- an automatic grade): only the course's instructor may, with points from 0 to
-- the question's. The attempt is rescored; when nothing waits any more it is
-- 'graded' and passed is decided (the completion trigger follows). Returns the
-- attempt's status afterwards.
CREATE OR REPLACE FUNCTION grade_assessment_answer(
    p_attempt_id uuid,
    p_question_id uuid,
    p_points numeric,
    p_grader_id uuid,
    p_feedback text DEFAULT NULL
)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_status text;
    v_assessment uuid;
    v_instructor uuid;
    v_course uuid;
    v_points numeric;
BEGIN
    SELECT t.status, t.assessment_id, c.instructor_id, c.id
    INTO v_status, v_assessment, v_instructor, v_course
    FROM assessment_attempts t
    JOIN assessments a ON a.id = t.assessment_id
    JOIN courses c ON c.id = a.course_id
    WHERE t.id = p_attempt_id
    FOR NO KEY UPDATE OF t;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('attempt %s not found', p_attempt_id);
    END IF;
    SELECT points INTO v_points
    FROM assessment_questions WHERE id = p_question_id AND assessment_id = v_assessment;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM assessment_questions WHERE id = p_question_id) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400',
                MESSAGE = format('question %s is not part of assessment %s',
                                 p_question_id, v_assessment);
        END IF;
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('question %s not found', p_question_id);
    END IF;
    IF v_status = 'in_progress' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('attempt %s is not submitted yet', p_attempt_id);
    END IF;
    IF p_grader_id IS DISTINCT FROM v_instructor THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('user %s is not the instructor of course %s and cannot grade',
                             p_grader_id, v_course);
    END IF;
    IF p_points IS NULL OR p_points < 0 OR p_points > v_points THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('points must be between 0 and %s (the question''s): %s',
                             v_points, p_points);
    END IF;
    IF p_feedback IS NOT NULL AND length(p_feedback) > 5000 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = 'feedback must be at most 5000 characters';
    END IF;
    UPDATE attempt_answers
    SET points_awarded = p_points, graded_by = p_grader_id, feedback = p_feedback,
        graded_at = now()
    WHERE attempt_id = p_attempt_id AND question_id = p_question_id;
    PERFORM elearn_score_attempt(p_attempt_id);
    RETURN (SELECT status FROM assessment_attempts WHERE id = p_attempt_id);
END;
$$;
