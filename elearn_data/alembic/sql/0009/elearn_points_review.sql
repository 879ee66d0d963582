-- AFTER INSERT ON course_reviews: a review written pays review_written once per
-- learner and course (updating the review is an UPDATE: it pays nothing; a new
-- enrollment's review of the same course pays nothing more). The event's time
-- is the row's created_at.
CREATE OR REPLACE FUNCTION elearn_points_review()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM elearn_award_points(
        NEW.user_id, 'review_written', NEW.course_id::text, NEW.course_id, NEW.created_at
    );
    RETURN NULL;
END;
$$;
