-- Recompute a submitted attempt's score from its answers: score = points
-- awarded, max_score = the assessment's total points, percent rounded to two
-- places. While an answer waits for a grader (points NULL) the attempt stays
-- 'submitted' with passed NULL; once every answer has points it is 'graded'
-- and passed = percent >= passing_percent. Called with the attempt row locked.
CREATE OR REPLACE FUNCTION elearn_score_attempt(p_attempt_id uuid)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_score numeric;
    v_pending int;
    v_max numeric;
    v_pass numeric;
    v_percent numeric;
BEGIN
    SELECT a.total_points, a.passing_percent INTO v_max, v_pass
    FROM assessment_attempts t JOIN assessments a ON a.id = t.assessment_id
    WHERE t.id = p_attempt_id;
    SELECT coalesce(sum(points_awarded), 0), count(*) FILTER (WHERE points_awarded IS NULL)
    INTO v_score, v_pending
    FROM attempt_answers WHERE attempt_id = p_attempt_id;
    v_percent := CASE WHEN v_max > 0 THEN least(100, round(v_score * 100 / v_max, 2)) ELSE 0 END;
    UPDATE assessment_attempts
    SET status = CASE WHEN v_pending > 0 THEN 'submitted' ELSE 'graded' END,
        score = v_score,
        max_score = v_max,
        percent = v_percent,
        passed = CASE WHEN v_pending > 0 THEN NULL ELSE v_percent >= v_pass END,
        submitted_at = coalesce(submitted_at, now()),
        graded_at = CASE WHEN v_pending > 0 THEN NULL ELSE now() END
    WHERE id = p_attempt_id;
END;
$$;
