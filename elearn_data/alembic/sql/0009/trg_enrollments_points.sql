CREATE TRIGGER trg_enrollments_points
AFTER INSERT OR UPDATE OF status ON enrollments
FOR EACH ROW WHEN (NEW.status = 'completed') EXECUTE FUNCTION elearn_points_course();
