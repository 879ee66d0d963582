CREATE TRIGGER trg_course_lessons_count_delete
AFTER DELETE ON course_lessons
REFERENCING OLD TABLE AS old_lessons
FOR EACH STATEMENT EXECUTE FUNCTION elearn_course_lesson_count_sync();
