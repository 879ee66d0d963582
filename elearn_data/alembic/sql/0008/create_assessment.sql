-- Create a draft assessment of a course on this shard; returns its id. The
-- application calls it on every shard with the same id and p_at inside the
-- catalog's two-phase commit. A lesson, when given, must belong to the course.
CREATE OR REPLACE FUNCTION create_assessment(
    p_id uuid,
    p_course_id uuid,
    p_title text,
    p_kind text DEFAULT 'quiz',
    p_passing_percent numeric DEFAULT 60,
    p_max_attempts int DEFAULT NULL,
    p_time_limit_minutes int DEFAULT NULL,
    p_required boolean DEFAULT true,
    p_lesson_id uuid DEFAULT NULL,
    p_source_content_id text DEFAULT NULL,
    p_at timestamptz DEFAULT now()
)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_title text := btrim(p_title);
    v_kind text := lower(btrim(coalesce(p_kind, 'quiz')));
    v_id_code int := elearn_id_code(p_id);
    v_status text;
BEGIN
    IF p_id IS NULL OR v_id_code IS NULL OR (v_id_code & 8) = 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('assessment id %s is not a catalog (reference) id', p_id);
    END IF;
    IF p_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'EL400', MESSAGE = 'the write time p_at is required';
    END IF;
    SELECT status INTO v_status FROM courses WHERE id = p_course_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('course %s not found', p_course_id);
    END IF;
    IF v_status = 'archived' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('course %s is archived: no new assessments', p_course_id);
    END IF;
    IF v_title IS NULL OR v_title = '' OR length(v_title) > 200 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('an assessment title must be 1 to 200 characters: %L', p_title);
    END IF;
    IF v_kind NOT IN ('quiz', 'assignment', 'exam') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('unknown assessment kind %L (quiz, assignment or exam)', p_kind);
    END IF;
    IF p_passing_percent IS NULL OR p_passing_percent < 0 OR p_passing_percent > 100 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('passing percent must be between 0 and 100: %s', p_passing_percent);
    END IF;
    IF p_max_attempts IS NOT NULL AND p_max_attempts < 1 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('max attempts must be at least 1: %s', p_max_attempts);
    END IF;
    IF p_time_limit_minutes IS NOT NULL AND p_time_limit_minutes < 1 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('a time limit must be at least 1 minute: %s', p_time_limit_minutes);
    END IF;
    IF p_lesson_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM course_lessons WHERE id = p_lesson_id AND course_id = p_course_id
    ) THEN
        IF EXISTS (SELECT 1 FROM course_lessons WHERE id = p_lesson_id) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL400',
                MESSAGE = format('lesson %s is not part of course %s', p_lesson_id, p_course_id);
        END IF;
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('lesson %s not found', p_lesson_id);
    END IF;
    INSERT INTO assessments (
        id, course_id, lesson_id, title, kind, passing_percent, max_attempts,
        time_limit_minutes, required, status, source_content_id, created_at, updated_at
    )
    VALUES (
        p_id, p_course_id, p_lesson_id, v_title, v_kind, p_passing_percent, p_max_attempts,
        p_time_limit_minutes, coalesce(p_required, true), 'draft', p_source_content_id, p_at, p_at
    );
    RETURN p_id;
END;
$$;
