-- Create a badge on this shard (the catalog writer runs it on every shard in one
-- two-phase commit) and award it at once, set-based, to every learner of this
-- shard who already meets it. LOCK ... IN SHARE MODE first: it waits for every
-- transaction that is changing a summary row and holds off new ones until this
-- one commits, so a learner reaching the threshold meanwhile is either counted
-- by the backfill below (a later statement, a fresh snapshot) or sees the badge
-- in its own trigger. Returns how many learners got the badge here.
CREATE OR REPLACE FUNCTION create_badge(
    p_id uuid,
    p_code text,
    p_name text,
    p_description text,
    p_criterion text,
    p_threshold int,
    p_at timestamptz
)
RETURNS int
LANGUAGE plpgsql
AS $$
DECLARE
    v_awarded int;
BEGIN
    LOCK TABLE learner_points IN SHARE MODE;
    INSERT INTO badges (id, code, name, description, criterion, threshold, created_at)
    VALUES (p_id, p_code, p_name, p_description, p_criterion, p_threshold, p_at);
    INSERT INTO badge_awards (user_id, badge_id, awarded_at)
    SELECT s.user_id, p_id, p_at
    FROM learner_points s
    WHERE elearn_badge_metric(p_criterion, s) >= p_threshold
    ON CONFLICT (user_id, badge_id) DO NOTHING;
    GET DIAGNOSTICS v_awarded = ROW_COUNT;
    RETURN v_awarded;
END;
$$;
