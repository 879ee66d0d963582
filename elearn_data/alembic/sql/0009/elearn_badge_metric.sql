-- The value of a badge criterion in a learner's summary row (NULL for an
-- unknown criterion, which the badges table's CHECK refuses anyway).
CREATE OR REPLACE FUNCTION elearn_badge_metric(p_criterion text, s learner_points)
RETURNS bigint
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT CASE p_criterion
        WHEN 'lessons_completed' THEN s.lessons_completed::bigint
        WHEN 'courses_completed' THEN s.courses_completed::bigint
        WHEN 'assessments_passed' THEN s.assessments_passed::bigint
        WHEN 'reviews_written' THEN s.reviews_written::bigint
        WHEN 'streak_days' THEN s.longest_streak::bigint
        WHEN 'points' THEN s.points
    END
$$;
