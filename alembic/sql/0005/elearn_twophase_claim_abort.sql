-- Recovery's claim: insert (gid, false) unless a decision exists already; the
-- primary key makes the claim and a late coordinator's decision exclusive.
CREATE OR REPLACE FUNCTION elearn_twophase_claim_abort(p_gid text)
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    INSERT INTO public.twophase_decisions (gid, committed) VALUES (p_gid, false)
    ON CONFLICT (gid) DO NOTHING
$$;
