-- Set the points an event pays from now on (catalog: run on every shard in one
-- two-phase commit). Payments already made keep their value (the ledger is
-- append-only).
CREATE OR REPLACE FUNCTION set_event_points(p_event text, p_points int, p_at timestamptz)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF p_points IS NULL OR p_points < 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('points must not be negative: %s', coalesce(p_points::text, 'NULL'));
    END IF;
    UPDATE point_rules SET points = p_points, updated_at = p_at WHERE event = p_event;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400', MESSAGE = format('unknown point event %s', p_event);
    END IF;
END;
$$;
