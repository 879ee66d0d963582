CREATE TRIGGER trg_lesson_progress_points
AFTER INSERT OR UPDATE OF completed ON lesson_progress
FOR EACH ROW WHEN (NEW.completed) EXECUTE FUNCTION elearn_points_lesson();
