-- A pending purchase of a course by a learner; returns its id. Amount and
-- currency default to the course's price and currency. The same (user,
-- idempotency key) returns the existing transaction (race-free through ON
-- CONFLICT); a reused key for another course or amount is refused.
CREATE OR REPLACE FUNCTION create_transaction(
    p_id uuid,
    p_user_id uuid,
    p_course_id uuid,
    p_amount numeric DEFAULT NULL,
    p_payment_method_id uuid DEFAULT NULL,
    p_currency text DEFAULT NULL,
    p_idempotency_key text DEFAULT NULL
)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_region text;
    v_price numeric;
    v_course_currency text;
    v_amount numeric;
    v_currency text;
    v_id uuid := p_id;
    v_result uuid;
    v_existing record;
BEGIN
    SELECT region INTO v_region FROM users WHERE id = p_user_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'EL404', MESSAGE = format('user %s not found', p_user_id);
    END IF;
    SELECT price, currency INTO v_price, v_course_currency FROM courses WHERE id = p_course_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('course %s not found', p_course_id);
    END IF;
    v_amount := round(coalesce(p_amount, v_price), 2);
    IF v_amount <= 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = CASE WHEN p_amount IS NULL
                THEN format('course %s is free (price %s): there is nothing to pay',
                            p_course_id, v_price)
                ELSE format('amount must be positive: %s', p_amount)
            END;
    END IF;
    IF v_amount >= 10000000000 THEN
        RAISE EXCEPTION USING ERRCODE = 'EL400', MESSAGE = format('amount is too large: %s', p_amount);
    END IF;
    v_currency := upper(btrim(coalesce(p_currency, v_course_currency)));
    IF v_currency !~ '^[A-Z]{3}$' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = format('invalid currency code %L', p_currency);
    END IF;
    IF p_payment_method_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM payment_methods WHERE id = p_payment_method_id AND user_id = p_user_id
    ) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404',
            MESSAGE = format(
                'payment method %s not found for user %s', p_payment_method_id, p_user_id
            );
    END IF;
    IF p_idempotency_key IS NOT NULL
        AND (btrim(p_idempotency_key) = '' OR length(p_idempotency_key) > 100)
    THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('idempotency key must have 1 to 100 characters: %L',
                             left(p_idempotency_key, 120));
    END IF;
    IF v_id IS NULL THEN
        v_id := elearn_new_id(v_region);
    ELSIF elearn_id_code(v_id) IS DISTINCT FROM elearn_region_code(v_region) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format(
                'transaction id %s does not carry the learner''s region %s', v_id, v_region
            );
    END IF;

    IF p_idempotency_key IS NULL THEN
        INSERT INTO transactions (id, user_id, course_id, payment_method_id, amount, currency)
        VALUES (v_id, p_user_id, p_course_id, p_payment_method_id, v_amount, v_currency);
        RETURN v_id;
    END IF;

    -- A concurrent insert of the same key makes this one wait, then do nothing.
    INSERT INTO transactions AS t (
        id, user_id, course_id, payment_method_id, amount, currency, idempotency_key
    )
    VALUES (
        v_id, p_user_id, p_course_id, p_payment_method_id, v_amount, v_currency,
        p_idempotency_key
    )
    ON CONFLICT (user_id, idempotency_key) DO NOTHING
    RETURNING t.id INTO v_result;
    IF v_result IS NOT NULL THEN
        RETURN v_result;
    END IF;
    SELECT t.id, t.course_id, t.amount, t.currency INTO v_existing
    FROM transactions t
    WHERE t.user_id = p_user_id AND t.idempotency_key = p_idempotency_key;
    IF v_existing.course_id <> p_course_id
        OR v_existing.amount <> v_amount
        OR v_existing.currency <> v_currency
    THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format(
                'idempotency key %L was already used for another purchase (transaction %s)',
                p_idempotency_key, v_existing.id
            );
    END IF;
    RETURN v_existing.id;
END;
$$;
