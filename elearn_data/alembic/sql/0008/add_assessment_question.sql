-- Add a question to a draft assessment on this shard (the catalog writer calls
-- it on every shard with the same id and p_at); returns its id. Questions are
-- frozen once the assessment is published: attempts are graded against them.
--
-- options: a JSON array of option texts (choice kinds, 2..50) or [] (others).
-- correct: the answer key, a JSON array -- one option index (single_choice),
-- distinct option indexes (multiple_choice), one boolean (true_false),
-- accepted texts (short_answer), [] (essay: graded by hand).
CREATE OR REPLACE FUNCTION add_assessment_question(
    p_id uuid,
    p_assessment_id uuid,
    p_order int,
    p_kind text,
    p_prompt text,
    p_points numeric DEFAULT 1,
    p_options jsonb DEFAULT '[]'::jsonb,
    p_correct jsonb DEFAULT '[]'::jsonb,
    p_at timestamptz DEFAULT now()
)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_kind text := lower(btrim(coalesce(p_kind, '')));
    v_prompt text := btrim(p_prompt);
    v_options jsonb := coalesce(p_options, '[]'::jsonb);
    v_correct jsonb := coalesce(p_correct, '[]'::jsonb);
    v_status text;
    v_n int;
    v_keep text := current_setting('elearn.keep_updated_at', true);
    v_id_code int := elearn_id_code(p_id);
BEGIN
    IF p_id IS NULL OR v_id_code IS NULL OR (v_id_code & 8) = 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('question id %s is not a catalog (reference) id', p_id);
    END IF;
    IF p_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'EL400', MESSAGE = 'the write time p_at is required';
    END IF;
    SELECT status INTO v_status FROM assessments WHERE id = p_assessment_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('assessment %s not found', p_assessment_id);
    END IF;
    IF v_status <> 'draft' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('assessment %s is published: its questions are frozen', p_assessment_id);
    END IF;
    IF v_kind NOT IN ('single_choice', 'multiple_choice', 'true_false', 'short_answer', 'essay') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format(
                'unknown question kind %L (single_choice, multiple_choice, true_false, '
                'short_answer or essay)', p_kind);
    END IF;
    IF p_order IS NULL OR p_order < 1 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = format('question order must be positive: %s', p_order);
    END IF;
    IF v_prompt IS NULL OR v_prompt = '' OR length(v_prompt) > 5000 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = 'a question prompt must be 1 to 5000 characters';
    END IF;
    IF p_points IS NULL OR p_points <= 0 OR p_points > 10000 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('question points must be above 0 (at most 10000): %s', p_points);
    END IF;
    IF jsonb_typeof(v_options) <> 'array' OR jsonb_typeof(v_correct) <> 'array' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = 'options and correct must be JSON arrays';
    END IF;
    v_n := jsonb_array_length(v_options);

    IF v_kind IN ('single_choice', 'multiple_choice') THEN
        IF v_n < 2 OR v_n > 50 THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400',
                MESSAGE = format('a choice question needs 2 to 50 options, not %s', v_n);
        END IF;
        IF EXISTS (
            SELECT 1 FROM jsonb_array_elements(v_options) o(v)
            WHERE jsonb_typeof(o.v) <> 'string'
               OR btrim(o.v #>> '{}') = '' OR length(o.v #>> '{}') > 1000
        ) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400', MESSAGE = 'every option must be a text of 1 to 1000 characters';
        END IF;
        IF EXISTS (
            SELECT 1 FROM jsonb_array_elements(v_correct) c(v)
            WHERE CASE WHEN jsonb_typeof(c.v) <> 'number' THEN true
                       ELSE (c.v #>> '{}')::numeric <> trunc((c.v #>> '{}')::numeric)
                            OR (c.v #>> '{}')::numeric < 0 OR (c.v #>> '{}')::numeric >= v_n
                  END
        ) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400',
                MESSAGE = format('a correct answer is not among the options (indexes 0 to %s): %s',
                                 v_n - 1, v_correct);
        END IF;
        IF (SELECT count(DISTINCT (c.v #>> '{}')::numeric::int) FROM jsonb_array_elements(v_correct) c(v))
           <> jsonb_array_length(v_correct) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400', MESSAGE = format('correct options repeat: %s', v_correct);
        END IF;
        IF v_kind = 'single_choice' AND jsonb_array_length(v_correct) <> 1 THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400',
                MESSAGE = format('a single-choice question has exactly one correct option: %s',
                                 v_correct);
        END IF;
        IF jsonb_array_length(v_correct) < 1 THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400', MESSAGE = 'a multiple-choice question needs a correct option';
        END IF;
        -- Stored in ascending order: the key reads the same whatever order it came in.
        SELECT jsonb_agg((c.v #>> '{}')::numeric::int ORDER BY (c.v #>> '{}')::numeric::int) INTO v_correct
        FROM jsonb_array_elements(v_correct) c(v);
    ELSE
        IF v_n <> 0 THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400',
                MESSAGE = format('a %s question takes no options', v_kind);
        END IF;
        IF v_kind = 'true_false' AND (jsonb_array_length(v_correct) <> 1
                                      OR jsonb_typeof(v_correct -> 0) <> 'boolean') THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400',
                MESSAGE = format('a true/false question has one boolean answer: %s', v_correct);
        END IF;
        IF v_kind = 'short_answer' AND (jsonb_array_length(v_correct) < 1 OR EXISTS (
            SELECT 1 FROM jsonb_array_elements(v_correct) c(v)
            WHERE jsonb_typeof(c.v) <> 'string' OR elearn_normalize_answer(c.v #>> '{}') = ''
               OR length(c.v #>> '{}') > 500
        )) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400',
                MESSAGE = format('a short-answer question needs accepted texts (1 to 500 '
                                 'characters, not blank): %s', v_correct);
        END IF;
        IF v_kind = 'essay' AND jsonb_array_length(v_correct) <> 0 THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400',
                MESSAGE = 'an essay has no answer key: it is graded by hand';
        END IF;
    END IF;

    IF EXISTS (
        SELECT 1 FROM assessment_questions
        WHERE assessment_id = p_assessment_id AND question_order = p_order
    ) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL412',
            MESSAGE = format('assessment %s already has a question with order %s',
                             p_assessment_id, p_order);
    END IF;
    INSERT INTO assessment_questions (
        id, assessment_id, question_order, kind, prompt, points, options, correct,
        created_at, updated_at
    )
    VALUES (
        p_id, p_assessment_id, p_order, v_kind, v_prompt, p_points, v_options, v_correct,
        p_at, p_at
    );
    PERFORM set_config('elearn.keep_updated_at', 'on', true);
    UPDATE assessments
    SET question_count = question_count + 1,
        total_points = total_points + p_points,
        updated_at = p_at
    WHERE id = p_assessment_id;
    PERFORM set_config('elearn.keep_updated_at', coalesce(v_keep, ''), true);
    RETURN p_id;
END;
$$;
