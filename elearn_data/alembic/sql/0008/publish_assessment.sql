-- Publish a draft assessment at p_at (idempotent: a published one returns its
-- published_at). An assessment without questions stays a draft. Publishing a
-- required assessment reverts the course's completed enrollments on this shard
-- (the trigger on assessments): the catalog's two-phase commit runs this on
-- every shard, so every region's learners are covered in the same commit.
CREATE OR REPLACE FUNCTION publish_assessment(p_assessment_id uuid, p_at timestamptz DEFAULT now())
RETURNS timestamptz
LANGUAGE plpgsql
AS $$
DECLARE
    v_status text;
    v_published_at timestamptz;
    v_questions int;
    v_keep text := current_setting('elearn.keep_updated_at', true);
BEGIN
    SELECT status, published_at, question_count INTO v_status, v_published_at, v_questions
    FROM assessments WHERE id = p_assessment_id
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('assessment %s not found', p_assessment_id);
    END IF;
    IF v_status = 'published' THEN
        RETURN v_published_at;
    END IF;
    IF v_questions = 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('assessment %s has no questions and cannot be published',
                             p_assessment_id);
    END IF;
    IF p_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'EL400', MESSAGE = 'the write time p_at is required';
    END IF;
    PERFORM set_config('elearn.keep_updated_at', 'on', true);
    UPDATE assessments
    SET status = 'published', published_at = p_at, updated_at = p_at
    WHERE id = p_assessment_id;
    PERFORM set_config('elearn.keep_updated_at', coalesce(v_keep, ''), true);
    RETURN p_at;
END;
$$;
