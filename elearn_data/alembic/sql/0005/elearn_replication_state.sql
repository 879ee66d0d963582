-- The primary's replication rows for health reports: which standby streams, in
-- which state, how far it replayed. Never the client address, the user or any
-- setting.
CREATE OR REPLACE FUNCTION elearn_replication_state()
RETURNS TABLE (application_name text, state text, sync_state text, replay_lsn bigint)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog
AS $$
    SELECT application_name::text, state, sync_state,
           pg_wal_lsn_diff(replay_lsn, '0/0')::bigint
    FROM pg_stat_replication
    ORDER BY application_name
$$;
