CREATE TRIGGER trg_course_lessons_count_update
AFTER UPDATE ON course_lessons
REFERENCING OLD TABLE AS old_lessons NEW TABLE AS new_lessons
FOR EACH STATEMENT EXECUTE FUNCTION elearn_course_lesson_count_sync();
