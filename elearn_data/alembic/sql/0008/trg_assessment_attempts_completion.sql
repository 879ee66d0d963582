CREATE TRIGGER trg_assessment_attempts_completion
AFTER UPDATE OF passed OR DELETE ON assessment_attempts
FOR EACH ROW EXECUTE FUNCTION elearn_attempt_completion_sync();
