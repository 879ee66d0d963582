-- This shard's part of the leaderboard: learners with their points (> 0), all
-- time (the summary rows) or since p_since and/or in one course (the ledger),
-- optionally of one region, with their first name. The two rounds of the
-- threshold top-N merge that query: p_min given -> every learner with at least
-- p_min points; else this shard's top p_limit (a learner's total lives on this
-- shard only, so these figures are exact: the merge's third round needs no
-- query). Ties are ordered by the lower user id, as the merge expects. The
-- all-time shapes are separate statements, each planned on
-- ix_learner_points_points.
CREATE OR REPLACE FUNCTION get_points_leaders(
    p_since timestamptz,
    p_course_id uuid,
    p_region text,
    p_limit int,
    p_min bigint
)
RETURNS TABLE (user_id uuid, points bigint, first_name varchar, region varchar)
LANGUAGE plpgsql
STABLE
AS $$
#variable_conflict use_column
BEGIN
    IF p_since IS NULL AND p_course_id IS NULL THEN
        IF p_min IS NOT NULL THEN
            RETURN QUERY
            SELECT s.user_id, s.points, u.first_name, u.region
            FROM learner_points s JOIN users u ON u.id = s.user_id
            WHERE s.points >= greatest(p_min, 1)
              AND (p_region IS NULL OR u.region = p_region);
        ELSE
            RETURN QUERY
            SELECT s.user_id, s.points, u.first_name, u.region
            FROM learner_points s JOIN users u ON u.id = s.user_id
            WHERE s.points > 0 AND (p_region IS NULL OR u.region = p_region)
            ORDER BY s.points DESC, s.user_id
            LIMIT p_limit;
        END IF;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT t.user_id, t.points, u.first_name, u.region
    FROM (
        SELECT l.user_id, sum(l.points)::bigint AS points
        FROM points_ledger l
        WHERE (p_since IS NULL OR l.awarded_at >= p_since)
          AND (p_course_id IS NULL OR l.course_id = p_course_id)
        GROUP BY l.user_id
    ) t
    JOIN users u ON u.id = t.user_id
    WHERE t.points > 0
      AND (p_region IS NULL OR u.region = p_region)
      AND (p_min IS NULL OR t.points >= p_min)
    ORDER BY t.points DESC, t.user_id
    LIMIT CASE WHEN p_min IS NULL THEN p_limit END;
END;
$$;
