CREATE TRIGGER trg_transactions_status_guard
BEFORE UPDATE OF status ON transactions
FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION elearn_transaction_status_guard();
