CREATE TRIGGER trg_course_reviews_points
AFTER INSERT ON course_reviews
FOR EACH ROW EXECUTE FUNCTION elearn_points_review();
