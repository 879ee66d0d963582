-- Delete a review (the rating trigger takes it out of the course's partials).
CREATE OR REPLACE FUNCTION delete_course_review(p_review_id uuid)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    DELETE FROM course_reviews WHERE id = p_review_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404', MESSAGE = format('review %s not found', p_review_id);
    END IF;
END;
$$;
