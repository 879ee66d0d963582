-- Revenue on THIS shard per (UTC) month and currency: purchases that completed
-- in the month (refunded ones included), refunds that completed in the month,
-- revenue = purchases - refunds, and how many transactions made them. p_start
-- and p_end are inclusive days (UTC); NULL = open.
CREATE OR REPLACE FUNCTION get_revenue_by_month(p_start date DEFAULT NULL, p_end date DEFAULT NULL)
RETURNS TABLE (
    month date,
    currency varchar,
    purchases numeric,
    refunds numeric,
    revenue numeric,
    transactions bigint
)
LANGUAGE plpgsql
STABLE
AS $$
#variable_conflict use_column
BEGIN
    IF p_start > p_end THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL400',
            MESSAGE = format('start %s is after end %s', p_start, p_end);
    END IF;
    RETURN QUERY
    SELECT date_trunc('month', t.completed_at AT TIME ZONE 'UTC')::date,
           t.currency,
           coalesce(sum(t.amount) FILTER (WHERE t.type = 'purchase'), 0),
           coalesce(sum(t.amount) FILTER (WHERE t.type = 'refund'), 0),
           coalesce(sum(CASE WHEN t.type = 'purchase' THEN t.amount ELSE -t.amount END), 0),
           count(*)
    FROM transactions t
    WHERE ((t.type = 'purchase' AND t.status IN ('completed', 'refunded'))
           OR (t.type = 'refund' AND t.status = 'completed'))
      AND (p_start IS NULL OR t.completed_at >= p_start::timestamp AT TIME ZONE 'UTC')
      AND (p_end IS NULL OR t.completed_at < (p_end + 1)::timestamp AT TIME ZONE 'UTC')
    GROUP BY 1, 2
    ORDER BY 1, 2;
END;
$$;
