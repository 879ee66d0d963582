-- Complete a pending purchase and issue its one invoice; returns the invoice id.
-- The row lock serialises concurrent callers: exactly one invoice per
-- transaction, and the same gateway id again returns the same invoice. Tax is
-- round(amount * p_tax_rate, 2); the number is INV-<SHARD>-<YYYY>-<seq>, from a
-- sequence (unique, gap-tolerant, no clock collisions).
CREATE OR REPLACE FUNCTION complete_transaction(
    p_transaction_id uuid,
    p_gateway_transaction_id text,
    p_tax_rate numeric DEFAULT 0.10
)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
    v_tx record;
    v_invoice uuid;
    v_region text;
    v_seq bigint;
    v_number text;
    v_tax numeric;
    v_now timestamptz := now();
BEGIN
    IF p_gateway_transaction_id IS NULL OR btrim(p_gateway_transaction_id) = ''
        OR length(p_gateway_transaction_id) > 100
    THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('gateway transaction id must have 1 to 100 characters: %L',
                             left(p_gateway_transaction_id, 120));
    END IF;
    IF p_tax_rate IS NULL OR p_tax_rate < 0 OR p_tax_rate > 1 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('tax rate must be between 0 and 1: %s',
                             coalesce(p_tax_rate::text, 'NULL'));
    END IF;
    SELECT t.id, t.user_id, t.type, t.status, t.amount, t.currency, t.gateway_transaction_id
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
            MESSAGE = format('transaction %s is a %s and cannot be completed',
                             p_transaction_id, v_tx.type);
    END IF;

    IF v_tx.status = 'completed' THEN
        IF v_tx.gateway_transaction_id IS DISTINCT FROM p_gateway_transaction_id THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL409',
                MESSAGE = format(
                    'transaction %s was already completed with gateway transaction %L, not %L',
                    p_transaction_id, v_tx.gateway_transaction_id, p_gateway_transaction_id
                );
        END IF;
        SELECT i.id INTO v_invoice FROM invoices i WHERE i.transaction_id = p_transaction_id;
        IF v_invoice IS NOT NULL THEN
            RETURN v_invoice;  -- a retry of the same completion
        END IF;
        -- Completed without an invoice (by other means): issue it now.
    ELSIF v_tx.status <> 'pending' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL409',
            MESSAGE = format('transaction %s is %s and cannot be completed',
                             p_transaction_id, v_tx.status);
    ELSE
        IF EXISTS (
            SELECT 1 FROM transactions t WHERE t.gateway_transaction_id = p_gateway_transaction_id
        ) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'EL412',
                MESSAGE = format('gateway transaction id %L is already used by another transaction',
                                 p_gateway_transaction_id);
        END IF;
        UPDATE transactions
        SET status = 'completed', gateway_transaction_id = p_gateway_transaction_id,
            completed_at = v_now
        WHERE id = p_transaction_id;
    END IF;

    SELECT u.region INTO v_region FROM users u WHERE u.id = v_tx.user_id;
    v_seq := nextval('invoice_number_seq');
    v_number := format(
        'INV-%s-%s-%s',
        upper(elearn_shard()),
        to_char(v_now AT TIME ZONE 'UTC', 'YYYY'),
        CASE WHEN v_seq < 1000000 THEN lpad(v_seq::text, 6, '0') ELSE v_seq::text END
    );
    v_tax := round(v_tx.amount * p_tax_rate, 2);
    INSERT INTO invoices (
        id, transaction_id, invoice_number, subtotal, tax, total, currency, status, issued_on
    )
    VALUES (
        elearn_new_id(v_region), p_transaction_id, v_number, v_tx.amount, v_tax,
        v_tx.amount + v_tax, v_tx.currency, 'paid', (v_now AT TIME ZONE 'UTC')::date
    )
    RETURNING id INTO v_invoice;
    RETURN v_invoice;
END;
$$;
