-- Register a user and its (1:1) profile on this shard; returns the user id.
-- p_id NULL: a new id of p_region. A duplicate email on this shard raises the
-- unique violation 23505 of uq_users_email (global uniqueness is the email
-- directory's job).
CREATE OR REPLACE FUNCTION create_user_with_profile(
    p_id uuid,
    p_email text,
    p_password_hash text,
    p_first_name text,
    p_last_name text,
    p_region text,
    p_role text DEFAULT 'student',
    p_country text DEFAULT NULL,
    p_city text DEFAULT NULL,
    p_phone text DEFAULT NULL
)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_email text := lower(btrim(p_email));
    v_region text := lower(btrim(p_region));
    v_role text := lower(btrim(coalesce(p_role, 'student')));
    v_first text := btrim(p_first_name);
    v_last text := btrim(p_last_name);
    v_phone text := nullif(btrim(p_phone), '');
    v_code int;
    v_id uuid := p_id;
BEGIN
    v_code := elearn_region_code(v_region);
    IF v_role NOT IN ('student', 'instructor', 'admin') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('invalid role %L; valid roles: student, instructor, admin', p_role);
    END IF;
    IF v_email IS NULL
        OR length(v_email) > 254
        OR v_email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'
    THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = format('invalid email address %L', p_email);
    END IF;
    IF p_password_hash IS NULL OR btrim(p_password_hash) = '' OR length(p_password_hash) > 255
    THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = 'a password hash of 1 to 255 characters is required';
    END IF;
    IF v_first IS NULL OR v_first = '' OR length(v_first) > 100 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('first name must have 1 to 100 characters: %L', p_first_name);
    END IF;
    IF v_last IS NULL OR v_last = '' OR length(v_last) > 100 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('last name must have 1 to 100 characters: %L', p_last_name);
    END IF;
    IF v_phone IS NOT NULL AND v_phone !~ '^[0-9+(). x-]{3,32}$' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = format('invalid phone number %L', p_phone);
    END IF;
    IF length(p_country) > 100 OR length(p_city) > 100 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = 'country and city have at most 100 characters';
    END IF;
    IF v_id IS NULL THEN
        v_id := elearn_new_id(v_region);
    ELSIF elearn_id_code(v_id) IS DISTINCT FROM v_code THEN
        -- The id decides the shard: one that names another region would be lost.
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('user id %s does not carry the region %s', v_id, v_region);
    END IF;

    INSERT INTO users (id, email, password_hash, first_name, last_name, role, region)
    VALUES (v_id, v_email, p_password_hash, v_first, v_last, v_role, v_region);
    INSERT INTO user_profiles (user_id, country, city, phone)
    VALUES (v_id, nullif(btrim(p_country), ''), nullif(btrim(p_city), ''), v_phone);
    RETURN v_id;
END;
$$;
