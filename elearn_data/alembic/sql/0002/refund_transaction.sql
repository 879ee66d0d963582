-- Refund a completed purchase exactly once: a completed 'refund' transaction of
-- the same amount linked by refund_of, the purchase set to 'refunded', its
-- invoice voided. Returns the refund's id.
CREATE OR REPLACE FUNCTION refund_transaction(p_transaction_id uuid, p_refund_id uuid DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_tx record;
    v_region text;
    v_id uuid := p_refund_id;
BEGIN
    -- Concurrent refunds queue here; all but the first then see 'refunded'.
    SELECT t.id, t.user_id, t.course_id, t.payment_method_id, t.amount, t.currency, t.type,
           t.status
    INTO v_tx
    FROM transactions t WHERE t.id = p_transaction_id
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('transaction %s not found', p_transaction_id);
    END IF;
    IF v_tx.type <> 'purchase' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('transaction %s is a refund; only a purchase can be refunded',
                             p_transaction_id);
    END IF;
    IF v_tx.status = 'refunded' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('transaction %s is already refunded', p_transaction_id);
    END IF;
    IF v_tx.status <> 'completed' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('transaction %s is %s; only a completed purchase can be refunded',
                             p_transaction_id, v_tx.status);
    END IF;
    SELECT u.region INTO v_region FROM users u WHERE u.id = v_tx.user_id;
    IF v_id IS NULL THEN
        v_id := elearn_new_id(v_region);
    ELSIF elearn_id_code(v_id) IS DISTINCT FROM elearn_region_code(v_region) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('refund id %s does not carry the learner''s region %s', v_id, v_region);
    END IF;

    INSERT INTO transactions (
        id, user_id, course_id, payment_method_id, amount, currency, type, status, refund_of,
        completed_at
    )
    VALUES (
        v_id, v_tx.user_id, v_tx.course_id, v_tx.payment_method_id, v_tx.amount, v_tx.currency,
        'refund', 'completed', v_tx.id, now()
    );
    UPDATE transactions SET status = 'refunded' WHERE id = v_tx.id;
    UPDATE invoices SET status = 'void' WHERE transaction_id = v_tx.id;
    RETURN v_id;
END;
$$;
