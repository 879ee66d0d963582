-- BEFORE UPDATE OF status ON transactions: only pending -> completed,
-- pending -> failed and completed -> refunded (purchases) are allowed; EL409
-- otherwise.
CREATE OR REPLACE FUNCTION elearn_transaction_status_guard()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.status IS NOT DISTINCT FROM OLD.status
        OR (OLD.status = 'pending' AND NEW.status IN ('completed', 'failed'))
        OR (OLD.status = 'completed' AND NEW.status = 'refunded' AND OLD.type = 'purchase')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'EL409',
        MESSAGE = format('transaction %s cannot go from %s to %s (a %s)',
                         OLD.id, OLD.status, NEW.status, OLD.type);
END;
$$;
