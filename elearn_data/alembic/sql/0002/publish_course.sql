-- Publish a draft course at p_at (idempotent: a published course returns its
-- published_at). Archived courses and courses without lessons stay unpublished.
CREATE OR REPLACE FUNCTION publish_course(p_course_id uuid, p_at timestamptz DEFAULT now())
RETURNS timestamptz
LANGUAGE plpgsql
AS $$
DECLARE
    v_status text;
    v_published_at timestamptz;
    v_keep text := current_setting('elearn.keep_updated_at', true);
BEGIN
    -- NO KEY UPDATE: enrollments' foreign keys (KEY SHARE) are not blocked.
    SELECT status, published_at INTO v_status, v_published_at
    FROM courses WHERE id = p_course_id
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('course %s not found', p_course_id);
    END IF;
    IF v_status = 'published' THEN
        RETURN v_published_at;
    END IF;
    IF v_status = 'archived' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('course %s is archived and cannot be published', p_course_id);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM course_lessons WHERE course_id = p_course_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('course %s has no lessons and cannot be published', p_course_id);
    END IF;
    IF p_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'EL400', MESSAGE = 'the write time p_at is required';
    END IF;
    -- updated_at is exactly p_at on every shard, even when it equals the old value.
    PERFORM set_config('elearn.keep_updated_at', 'on', true);
    UPDATE courses
    SET status = 'published', published_at = p_at, updated_at = p_at
    WHERE id = p_course_id;
    PERFORM set_config('elearn.keep_updated_at', coalesce(v_keep, ''), true);
    RETURN p_at;
END;
$$;
