-- The user and profile with this email on this shard (case-insensitive); no row
-- when there is none.
CREATE OR REPLACE FUNCTION get_user_by_email(p_email text)
RETURNS TABLE (
    user_id uuid,
    email varchar,
    password_hash varchar,
    first_name varchar,
    last_name varchar,
    role varchar,
    region varchar,
    status varchar,
    created_at timestamptz,
    updated_at timestamptz,
    last_login timestamptz,
    country varchar,
    city varchar,
    phone varchar,
    bio text,
    timezone varchar,
    language varchar,
    avatar_url varchar,
    date_of_birth date
)
LANGUAGE sql
STABLE
AS $$
    SELECT u.id, u.email, u.password_hash, u.first_name, u.last_name, u.role, u.region,
           u.status, u.created_at, u.updated_at, u.last_login,
           p.country, p.city, p.phone, p.bio, p.timezone, p.language, p.avatar_url,
           p.date_of_birth
    FROM users u
    LEFT JOIN user_profiles p ON p.user_id = u.id
    WHERE u.email = lower(btrim(p_email));
$$;
