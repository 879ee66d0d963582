-- This shard's part of a leaderboard over the ledger: learners with their
-- points (> 0) awarded since p_since and/or in course p_course_id (either may
-- be NULL), optionally of one region, the top p_limit, ties by the lower user
-- id, with their first name. A learner's ledger lives on this shard only, so
-- these figures are exact. Inlined into the calling statement, as
-- get_points_leaders_all.
CREATE FUNCTION get_points_leaders_since(
    p_since timestamptz,
    p_course_id uuid,
    p_region text,
    p_limit int
)
RETURNS TABLE (user_id uuid, points bigint, first_name varchar, region varchar)
LANGUAGE sql
STABLE
AS $$
    SELECT t.user_id, t.points, u.first_name, u.region
    FROM (
        SELECT l.user_id, sum(l.points)::bigint AS points
        FROM points_ledger l
        WHERE (p_since IS NULL OR l.awarded_at >= p_since)
          AND (p_course_id IS NULL OR l.course_id = p_course_id)
        GROUP BY l.user_id
    ) t
    JOIN users u ON u.id = t.user_id
    WHERE t.points > 0 AND (p_region IS NULL OR u.region = p_region)
    ORDER BY t.points DESC, t.user_id
    LIMIT p_limit
$$;
