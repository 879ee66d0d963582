CREATE TRIGGER trg_courses_course_stats
AFTER INSERT ON courses
FOR EACH ROW EXECUTE FUNCTION elearn_course_stats_init();
