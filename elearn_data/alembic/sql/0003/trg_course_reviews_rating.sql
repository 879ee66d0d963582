CREATE TRIGGER trg_course_reviews_rating
AFTER INSERT OR UPDATE OF rating, course_id OR DELETE ON course_reviews
FOR EACH ROW EXECUTE FUNCTION elearn_course_rating_sync();
