-- The coordinator's commit decision: insert (gid, true); fails on the primary
-- key when recovery claimed an abort first (or the decision exists already).
CREATE OR REPLACE FUNCTION elearn_twophase_decide(p_gid text)
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
    INSERT INTO public.twophase_decisions (gid, committed) VALUES (p_gid, true)
$$;
