-- Archive a course at p_at (idempotent); it leaves search and popular lists,
-- existing enrollments stay.
CREATE OR REPLACE FUNCTION archive_course(p_course_id uuid, p_at timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_keep text := current_setting('elearn.keep_updated_at', true);
    v_changed boolean;
BEGIN
    IF p_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'EL400', MESSAGE = 'the write time p_at is required';
    END IF;
    -- updated_at is exactly p_at on every shard, even when it equals the old value.
    PERFORM set_config('elearn.keep_updated_at', 'on', true);
    UPDATE courses SET status = 'archived', updated_at = p_at
    WHERE id = p_course_id AND status <> 'archived';
    v_changed := FOUND;
    PERFORM set_config('elearn.keep_updated_at', coalesce(v_keep, ''), true);
    IF NOT v_changed AND NOT EXISTS (SELECT 1 FROM courses WHERE id = p_course_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('course %s not found', p_course_id);
    END IF;
END;
$$;
