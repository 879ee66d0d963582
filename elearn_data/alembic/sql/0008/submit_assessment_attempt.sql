-- Submit an open attempt and grade what can be graded at once: every objective
-- answer gets its points (all or nothing), an unanswered question 0, an
-- answered essay waits for a grader (points NULL). Returns the attempt's status
-- afterwards: 'graded', or 'submitted' while essays wait. The attempt row is
-- locked first: of concurrent submits one grades it, the others find it
-- submitted (InvalidState) -- an attempt is graded once.
CREATE OR REPLACE FUNCTION submit_assessment_attempt(p_attempt_id uuid)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_status text;
    v_assessment uuid;
    v_enrollment_status text;
BEGIN
    SELECT t.status, t.assessment_id, e.status INTO v_status, v_assessment, v_enrollment_status
    FROM assessment_attempts t JOIN enrollments e ON e.id = t.enrollment_id
    WHERE t.id = p_attempt_id
    FOR NO KEY UPDATE OF t;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('attempt %s not found', p_attempt_id);
    END IF;
    IF v_status <> 'in_progress' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('attempt %s is already submitted', p_attempt_id);
    END IF;
    IF v_enrollment_status = 'dropped' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('the enrollment of attempt %s is dropped', p_attempt_id);
    END IF;
    INSERT INTO attempt_answers (attempt_id, question_id, response, points_awarded)
    SELECT p_attempt_id, q.id, NULL, 0
    FROM assessment_questions q
    WHERE q.assessment_id = v_assessment
      AND NOT EXISTS (
          SELECT 1 FROM attempt_answers a WHERE a.attempt_id = p_attempt_id AND a.question_id = q.id
      );
    UPDATE attempt_answers a
    SET points_awarded = CASE
            WHEN q.kind = 'essay' THEN NULL
            WHEN elearn_answer_correct(q.kind, q.correct, a.response) THEN q.points
            ELSE 0
        END
    FROM assessment_questions q
    WHERE a.attempt_id = p_attempt_id AND q.id = a.question_id AND a.response IS NOT NULL;
    PERFORM elearn_score_attempt(p_attempt_id);
    RETURN (SELECT status FROM assessment_attempts WHERE id = p_attempt_id);
END;
$$;
