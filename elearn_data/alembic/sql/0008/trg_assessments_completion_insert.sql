CREATE TRIGGER trg_assessments_completion_insert
AFTER INSERT ON assessments
REFERENCING NEW TABLE AS new_assessments
FOR EACH STATEMENT EXECUTE FUNCTION elearn_assessment_completion_sync();
