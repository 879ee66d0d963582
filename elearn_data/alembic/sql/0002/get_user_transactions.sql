-- A learner's purchases and refunds with their invoices, newest first
-- (p_limit NULL = all).
CREATE OR REPLACE FUNCTION get_user_transactions(p_user_id uuid, p_limit int DEFAULT 50)
RETURNS TABLE (
    transaction_id uuid,
    course_id uuid,
    course_code varchar,
    course_title varchar,
    amount numeric,
    currency varchar,
    type varchar,
    status varchar,
    payment_method_id uuid,
    gateway_transaction_id varchar,
    refund_of uuid,
    idempotency_key varchar,
    invoice_id uuid,
    invoice_number varchar,
    invoice_status varchar,
    created_at timestamptz,
    completed_at timestamptz
)
LANGUAGE plpgsql
STABLE
AS $$
#variable_conflict use_column
BEGIN
    IF p_limit < 1 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = format('limit must be positive: %s', p_limit);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM users u WHERE u.id = p_user_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'EL404', MESSAGE = format('user %s not found', p_user_id);
    END IF;
    RETURN QUERY
    SELECT t.id, t.course_id, c.code, c.title, t.amount, t.currency, t.type, t.status,
           t.payment_method_id, t.gateway_transaction_id, t.refund_of, t.idempotency_key,
           i.id, i.invoice_number, i.status, t.created_at, t.completed_at
    FROM transactions t
    JOIN courses c ON c.id = t.course_id
    LEFT JOIN invoices i ON i.transaction_id = t.id  -- at most one per transaction
    WHERE t.user_id = p_user_id
    ORDER BY t.created_at DESC, t.id DESC
    LIMIT p_limit;
END;
$$;
