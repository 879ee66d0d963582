-- Mark a pending transaction failed (only a pending one can fail).
CREATE OR REPLACE FUNCTION fail_transaction(p_transaction_id uuid)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_status text;
BEGIN
    SELECT status INTO v_status FROM transactions WHERE id = p_transaction_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('transaction %s not found', p_transaction_id);
    END IF;
    IF v_status <> 'pending' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('transaction %s is %s; only a pending transaction can fail',
                             p_transaction_id, v_status);
    END IF;
    UPDATE transactions SET status = 'failed' WHERE id = p_transaction_id;
END;
$$;
