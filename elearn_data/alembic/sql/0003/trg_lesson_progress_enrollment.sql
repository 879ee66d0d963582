CREATE TRIGGER trg_lesson_progress_enrollment
AFTER INSERT OR UPDATE OF completed OR DELETE ON lesson_progress
FOR EACH ROW EXECUTE FUNCTION elearn_enrollment_progress_sync();
