CREATE TRIGGER trg_enrollments_course_stats
AFTER INSERT OR UPDATE OF status, course_id OR DELETE ON enrollments
FOR EACH ROW EXECUTE FUNCTION elearn_enrollment_counts_sync();
