-- Delete decisions older than p_age_s seconds whose gid no shard still holds
-- prepared (p_keep); returns how many were deleted.
CREATE OR REPLACE FUNCTION elearn_twophase_forget(p_age_s double precision, p_keep text[])
RETURNS bigint
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH gone AS (
        DELETE FROM public.twophase_decisions
        WHERE created_at < now() - make_interval(secs => p_age_s)
          AND NOT (gid = ANY(p_keep))
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;
