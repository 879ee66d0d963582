-- Is a response right? Objective kinds only (NULL for an essay: a grader
-- decides). Choices are all-or-nothing: a multiple-choice response must be
-- exactly the set of correct options; true/false compares the boolean; a short
-- answer matches any accepted text, case- and space-insensitively.
CREATE OR REPLACE FUNCTION elearn_answer_correct(p_kind text, p_correct jsonb, p_response jsonb)
RETURNS boolean
LANGUAGE plpgsql
IMMUTABLE
AS $$
BEGIN
    IF p_kind = 'essay' THEN
        RETURN NULL;
    END IF;
    IF p_response IS NULL OR p_response = 'null'::jsonb THEN
        RETURN false;
    END IF;
    IF p_kind IN ('single_choice', 'true_false') THEN
        RETURN p_response = p_correct -> 0;
    ELSIF p_kind = 'multiple_choice' THEN
        RETURN jsonb_typeof(p_response) = 'array'
            AND p_response @> p_correct AND p_correct @> p_response;
    ELSIF p_kind = 'short_answer' THEN
        RETURN jsonb_typeof(p_response) = 'string' AND EXISTS (
            SELECT 1 FROM jsonb_array_elements_text(p_correct) AS c(accepted)
            WHERE elearn_normalize_answer(c.accepted) = elearn_normalize_answer(p_response #>> '{}')
        );
    END IF;
    RETURN false;
END;
$$;
