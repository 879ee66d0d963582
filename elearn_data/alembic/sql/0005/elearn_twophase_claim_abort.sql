-- Recovery's claim: insert (gid, false) unless a decision exists already; the
-- primary key makes the claim and a late coordinator's decision exclusive.
-- Returns true when this call made the claim (false: a decision existed).
CREATE OR REPLACE FUNCTION elearn_twophase_claim_abort(p_gid text)
RETURNS boolean
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    WITH claimed AS (
        INSERT INTO public.twophase_decisions (gid, committed) VALUES (p_gid, false)
        ON CONFLICT (gid) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) = 1 FROM claimed
$$;
