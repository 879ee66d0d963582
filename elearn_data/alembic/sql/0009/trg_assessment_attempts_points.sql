CREATE TRIGGER trg_assessment_attempts_points
AFTER INSERT OR UPDATE OF submitted_at, passed ON assessment_attempts
FOR EACH ROW EXECUTE FUNCTION elearn_points_attempt();
