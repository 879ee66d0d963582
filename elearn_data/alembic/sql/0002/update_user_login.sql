-- Record a login; returns the new last_login.
CREATE OR REPLACE FUNCTION update_user_login(p_user_id uuid)
RETURNS timestamptz
LANGUAGE plpgsql
AS $$
DECLARE
    v_at timestamptz;
BEGIN
    UPDATE users SET last_login = now() WHERE id = p_user_id RETURNING last_login INTO v_at;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'EL404', MESSAGE = format('user %s not found', p_user_id);
    END IF;
    RETURN v_at;
END;
$$;
