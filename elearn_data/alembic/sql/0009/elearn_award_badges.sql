-- AFTER INSERT OR UPDATE ON learner_points: award every badge whose criterion
-- the learner's summary now reaches, once (badge_awards' key; ON CONFLICT DO
-- NOTHING). A badge being created concurrently is either visible here (its
-- creator committed before this statement) or its creator's backfill sees this
-- summary row: create_badge locks learner_points in SHARE mode, which
-- waits for this transaction and blocks the next ones until the badge commits.
CREATE OR REPLACE FUNCTION elearn_award_badges()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO badge_awards (user_id, badge_id, awarded_at)
    SELECT NEW.user_id, b.id, now()
    FROM badges b
    WHERE elearn_badge_metric(b.criterion, NEW) >= b.threshold
    ON CONFLICT (user_id, badge_id) DO NOTHING;
    RETURN NULL;
END;
$$;
