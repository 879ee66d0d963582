CREATE TRIGGER trg_course_lessons_count_insert
AFTER INSERT ON course_lessons
REFERENCING NEW TABLE AS new_lessons
FOR EACH STATEMENT EXECUTE FUNCTION elearn_course_lesson_count_sync();
