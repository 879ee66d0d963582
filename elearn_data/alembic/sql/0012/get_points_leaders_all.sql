-- This shard's part of the all-time leaderboard: its top p_limit learners by
-- the summary rows' points (> 0), optionally of one region, ties by the lower
-- user id, with their first name. A learner's total lives on this shard only,
-- so these figures are exact. One SQL SELECT, STABLE, SECURITY INVOKER, no SET:
-- PostgreSQL inlines it into the calling statement, which is then planned as
-- the SELECT itself (ix_learner_points_points, then pk_users for ten rows).
CREATE FUNCTION get_points_leaders_all(p_region text, p_limit int)
RETURNS TABLE (user_id uuid, points bigint, first_name varchar, region varchar)
LANGUAGE sql
STABLE
AS $$
    SELECT s.user_id, s.points, u.first_name, u.region
    FROM learner_points s JOIN users u ON u.id = s.user_id
    WHERE s.points > 0 AND (p_region IS NULL OR u.region = p_region)
    ORDER BY s.points DESC, s.user_id
    LIMIT p_limit
$$;
