-- What choosing a replica needs, for the application role without pg_monitor:
-- the replay position, the WAL received but not replayed yet (bytes) and the
-- WAL receiver's status (NULL on a primary). pg_stat_wal_receiver hides its
-- status from roles without pg_read_all_stats; the owner holds that role, this
-- function runs as the owner and returns these three values only.
CREATE OR REPLACE FUNCTION elearn_standby_state(
    OUT replay_lsn bigint,
    OUT pending_bytes bigint,
    OUT receiver_status text
)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog
AS $$
    SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint,
           pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,
           (SELECT status FROM pg_stat_wal_receiver)
$$;
