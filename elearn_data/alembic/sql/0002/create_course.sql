-- Create a draft course on this shard; returns its id. The application calls it
-- on every shard with the same id and p_at inside one two-phase commit; the seat
-- ledger row (capacity = p_max_enrollments) is written only where
-- p_with_seat_ledger (the course's home shard). The course_stats row comes from
-- the trigger on courses.
CREATE OR REPLACE FUNCTION create_course(
    p_id uuid,
    p_code text,
    p_title text,
    p_instructor_id uuid,
    p_description text DEFAULT NULL,
    p_category_id uuid DEFAULT NULL,
    p_level text DEFAULT 'beginner',
    p_price numeric DEFAULT 0,
    p_currency text DEFAULT 'USD',
    p_duration_hours numeric DEFAULT NULL,
    p_max_enrollments int DEFAULT NULL,
    p_language text DEFAULT 'English',
    p_with_seat_ledger boolean DEFAULT false,
    p_at timestamptz DEFAULT now()
)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_code text := upper(btrim(p_code));
    v_title text := btrim(p_title);
    v_level text := lower(btrim(coalesce(p_level, 'beginner')));
    v_currency text := upper(btrim(coalesce(p_currency, 'USD')));
    v_language text := btrim(coalesce(p_language, 'English'));
    v_id_code int := elearn_id_code(p_id);
BEGIN
    IF p_id IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = 'a course id is required (the same id is written on every shard)';
    END IF;
    IF v_id_code IS NULL OR (v_id_code & 8) = 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('course id %s is not a catalog (reference) id', p_id);
    END IF;
    IF v_code IS NULL OR v_code !~ '^[A-Z0-9][A-Z0-9_.-]{1,31}$' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format(
                'invalid course code %L: 2 to 32 letters, digits, "_", "." or "-", '
                'starting with a letter or digit',
                p_code
            );
    END IF;
    IF v_title IS NULL OR v_title = '' OR length(v_title) > 200 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('course title must have 1 to 200 characters: %L', p_title);
    END IF;
    IF p_instructor_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'EL400', MESSAGE = 'an instructor id is required';
    END IF;
    IF v_level NOT IN ('beginner', 'intermediate', 'advanced') THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format(
                'invalid level %L; valid levels: beginner, intermediate, advanced', p_level
            );
    END IF;
    IF p_price IS NULL OR p_price < 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('price must not be negative: %s', coalesce(p_price::text, 'NULL'));
    END IF;
    IF p_price >= 100000000 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = format('price is too large: %s', p_price);
    END IF;
    IF v_currency !~ '^[A-Z]{3}$' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = format('invalid currency code %L', p_currency);
    END IF;
    IF p_duration_hours < 0 OR p_duration_hours >= 100000 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('duration must be between 0 and 99999.9 hours: %s', p_duration_hours);
    END IF;
    IF p_max_enrollments <= 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('max_enrollments must be positive: %s', p_max_enrollments);
    END IF;
    IF v_language = '' OR length(v_language) > 50 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('language must have 1 to 50 characters: %L', p_language);
    END IF;
    IF p_at IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'EL400', MESSAGE = 'the write time p_at is required';
    END IF;
    IF p_category_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM course_categories WHERE id = p_category_id)
    THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('category %s not found', p_category_id);
    END IF;
    -- A concurrent creator of the same code is caught by uq_courses_code (23505).
    IF EXISTS (SELECT 1 FROM courses WHERE code = v_code) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL412', MESSAGE = format('course code %s is already taken', v_code);
    END IF;

    INSERT INTO courses (
        id, code, title, description, instructor_id, category_id, level, price, currency,
        max_enrollments, duration_hours, language, created_at, updated_at
    )
    VALUES (
        p_id, v_code, v_title, p_description, p_instructor_id, p_category_id, v_level, p_price,
        v_currency, p_max_enrollments, p_duration_hours, v_language, p_at, p_at
    );
    IF p_with_seat_ledger THEN
        INSERT INTO course_seats (course_id, capacity, taken, updated_at)
        VALUES (p_id, p_max_enrollments, 0, p_at);
    END IF;
    RETURN p_id;
END;
$$;
