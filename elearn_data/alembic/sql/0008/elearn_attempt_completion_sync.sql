-- AFTER UPDATE OF passed / DELETE ON assessment_attempts: an attempt that
-- passes can complete its enrollment (every lesson done, every published
-- required assessment passed); a regrade that fails it, or its removal, can
-- revert a completed enrollment. Only a change of passed matters.
CREATE OR REPLACE FUNCTION elearn_attempt_completion_sync()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.passed IS NOT DISTINCT FROM OLD.passed THEN
            RETURN NULL;
        END IF;
        PERFORM elearn_sync_completion(ARRAY[NEW.enrollment_id], NULL);
    ELSIF OLD.passed THEN
        PERFORM elearn_sync_completion(ARRAY[OLD.enrollment_id], NULL);
    END IF;
    RETURN NULL;
END;
$$;
