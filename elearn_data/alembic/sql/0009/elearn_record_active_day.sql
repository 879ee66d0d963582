-- A learner was active (completed a lesson, submitted an attempt) at p_at: the
-- UTC calendar day of p_at is a streak day, paid once (ledger key: the ISO
-- day). On a new day the streaks are recomputed from the learner's streak-day
-- rows (gaps and islands): streak_days is the run of consecutive days ending at
-- the latest active day, longest_streak the longest run. elearn_award_points
-- has locked the summary row before the recount, and the recount is a new
-- statement (a fresh READ COMMITTED snapshot), so a concurrent new day of the
-- same learner is waited for and then counted: the streaks never miss a day,
-- whatever order the days arrive in.
CREATE OR REPLACE FUNCTION elearn_record_active_day(p_user_id uuid, p_at timestamptz)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_day date := (coalesce(p_at, now()) AT TIME ZONE 'UTC')::date;
BEGIN
    IF NOT elearn_award_points(p_user_id, 'streak_day', to_char(v_day, 'YYYY-MM-DD'), NULL, p_at)
    THEN
        RETURN;
    END IF;
    WITH days AS (
        SELECT l.source_id::date AS day
        FROM points_ledger l
        WHERE l.user_id = p_user_id AND l.event = 'streak_day'
    ),
    islands AS (
        SELECT day, day - (row_number() OVER (ORDER BY day))::int AS island FROM days
    ),
    runs AS (
        SELECT max(day) AS last_day, count(*)::int AS length FROM islands GROUP BY island
    )
    UPDATE learner_points s
    SET streak_days = (SELECT r.length FROM runs r ORDER BY r.last_day DESC LIMIT 1),
        longest_streak = (SELECT max(r.length) FROM runs r),
        last_active_day = (SELECT max(r.last_day) FROM runs r),
        updated_at = now()
    WHERE s.user_id = p_user_id;
END;
$$;
