-- Set a user's status to inactive (idempotent).
CREATE OR REPLACE FUNCTION deactivate_user(p_user_id uuid)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE users SET status = 'inactive' WHERE id = p_user_id AND status <> 'inactive';
    IF NOT FOUND AND NOT EXISTS (SELECT 1 FROM users WHERE id = p_user_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'EL404', MESSAGE = format('user %s not found', p_user_id);
    END IF;
END;
$$;
