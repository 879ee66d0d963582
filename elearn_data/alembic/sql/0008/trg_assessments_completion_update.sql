CREATE TRIGGER trg_assessments_completion_update
AFTER UPDATE ON assessments
REFERENCING NEW TABLE AS new_assessments OLD TABLE AS old_assessments
FOR EACH STATEMENT EXECUTE FUNCTION elearn_assessment_completion_sync();
