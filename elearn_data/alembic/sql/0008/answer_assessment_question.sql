-- Record (or replace) the response of an open attempt to one of its questions.
-- Responses by kind: single_choice an option index, multiple_choice an array of
-- distinct option indexes (stored sorted), true_false a boolean, short_answer
-- a text of up to 500 characters, essay a text of up to 20000. Refused once the
-- attempt is submitted or its time limit has passed (the attempt row is locked,
-- so an answer and a submit of one attempt never interleave).
CREATE OR REPLACE FUNCTION answer_assessment_question(
    p_attempt_id uuid,
    p_question_id uuid,
    p_response jsonb
)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_status text;
    v_deadline timestamptz;
    v_assessment uuid;
    v_enrollment_status text;
    v_kind text;
    v_n int;
    v_response jsonb := p_response;
    v_type text := jsonb_typeof(p_response);
    v_bad boolean;
    v_max_length int;
BEGIN
    SELECT t.status, t.deadline_at, t.assessment_id, e.status
    INTO v_status, v_deadline, v_assessment, v_enrollment_status
    FROM assessment_attempts t JOIN enrollments e ON e.id = t.enrollment_id
    WHERE t.id = p_attempt_id
    FOR NO KEY UPDATE OF t;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('attempt %s not found', p_attempt_id);
    END IF;
    SELECT kind, jsonb_array_length(options) INTO v_kind, v_n
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
    IF v_status <> 'in_progress' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('attempt %s is %s: answers are closed', p_attempt_id, v_status);
    END IF;
    IF v_enrollment_status = 'dropped' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('the enrollment of attempt %s is dropped', p_attempt_id);
    END IF;
    IF v_deadline IS NOT NULL AND clock_timestamp() > v_deadline THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('attempt %s is past its time limit (%s): submit it',
                             p_attempt_id, v_deadline);
    END IF;

    IF v_kind = 'single_choice' THEN
        -- CASE, not OR: the casts run only on a number.
        v_bad := CASE WHEN v_type IS DISTINCT FROM 'number' THEN true
                      ELSE (p_response #>> '{}')::numeric <> trunc((p_response #>> '{}')::numeric)
                           OR (p_response #>> '{}')::numeric < 0
                           OR (p_response #>> '{}')::numeric >= v_n
                 END;
        IF v_bad THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400',
                MESSAGE = format('a single-choice answer is one option index from 0 to %s: %s',
                                 v_n - 1, p_response);
        END IF;
        v_response := to_jsonb((p_response #>> '{}')::numeric::int);
    ELSIF v_kind = 'multiple_choice' THEN
        IF v_type IS DISTINCT FROM 'array' OR EXISTS (
            SELECT 1 FROM jsonb_array_elements(p_response) r(v)
            WHERE CASE WHEN jsonb_typeof(r.v) <> 'number' THEN true
                       ELSE (r.v #>> '{}')::numeric <> trunc((r.v #>> '{}')::numeric)
                            OR (r.v #>> '{}')::numeric < 0 OR (r.v #>> '{}')::numeric >= v_n
                  END
        ) OR (SELECT count(DISTINCT (r.v #>> '{}')::numeric::int) FROM jsonb_array_elements(p_response) r(v))
             <> jsonb_array_length(p_response) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400',
                MESSAGE = format('a multiple-choice answer is a list of distinct option indexes '
                                 'from 0 to %s: %s', v_n - 1, p_response);
        END IF;
        SELECT coalesce(jsonb_agg((r.v #>> '{}')::numeric::int ORDER BY (r.v #>> '{}')::numeric::int), '[]'::jsonb)
        INTO v_response FROM jsonb_array_elements(p_response) r(v);
    ELSIF v_kind = 'true_false' THEN
        IF v_type IS DISTINCT FROM 'boolean' THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400',
                MESSAGE = format('a true/false answer is true or false: %s', p_response);
        END IF;
    ELSE
        v_max_length := CASE WHEN v_kind = 'essay' THEN 20000 ELSE 500 END;
        IF v_type IS DISTINCT FROM 'string' OR length(p_response #>> '{}') > v_max_length THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400',
                MESSAGE = format('a %s answer is a text of at most %s characters', v_kind,
                                 v_max_length);
        END IF;
    END IF;

    INSERT INTO attempt_answers AS a (attempt_id, question_id, response, answered_at, updated_at)
    VALUES (p_attempt_id, p_question_id, v_response, now(), now())
    ON CONFLICT (attempt_id, question_id) DO UPDATE
    SET response = EXCLUDED.response, answered_at = EXCLUDED.answered_at;
END;
$$;
