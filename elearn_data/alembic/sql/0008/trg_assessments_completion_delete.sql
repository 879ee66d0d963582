CREATE TRIGGER trg_assessments_completion_delete
AFTER DELETE ON assessments
REFERENCING OLD TABLE AS old_assessments
FOR EACH STATEMENT EXECUTE FUNCTION elearn_assessment_completion_sync();
