-- Attach a certificate URL to a completed enrollment; returns when it was
-- issued (the same time again for the same URL).
CREATE OR REPLACE FUNCTION issue_certificate(p_enrollment_id uuid, p_url text)
RETURNS timestamptz
LANGUAGE plpgsql
AS $$
DECLARE
    v_status text;
    v_url text;
    v_issued_at timestamptz;
BEGIN
    IF p_url IS NULL OR p_url !~ '^https?://[^[:space:]/]+[^[:space:]]*$' OR length(p_url) > 500
    THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('certificate URL must be an http(s) URL of at most 500 characters: %L',
                             left(p_url, 100));
    END IF;
    SELECT status, certificate_url, certificate_issued_at INTO v_status, v_url, v_issued_at
    FROM enrollments WHERE id = p_enrollment_id
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('enrollment %s not found', p_enrollment_id);
    END IF;
    IF v_status <> 'completed' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('enrollment %s is %s, not completed', p_enrollment_id, v_status);
    END IF;
    IF v_url IS NOT DISTINCT FROM p_url THEN
        RETURN v_issued_at;
    END IF;
    UPDATE enrollments SET certificate_url = p_url, certificate_issued_at = now()
    WHERE id = p_enrollment_id
    RETURNING certificate_issued_at INTO v_issued_at;
    RETURN v_issued_at;
END;
$$;
