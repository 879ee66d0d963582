-- BEFORE UPDATE: stamp updated_at with the transaction time, unless the
-- statement gave it a new value itself, or the transaction-local setting
-- elearn.keep_updated_at is 'on' (catalog writes carry one timestamp to every
-- shard: the catalog functions taking p_at set it around their UPDATE, and the
-- application may SET LOCAL it for its own replicated catalog writes).
-- Columns named in the trigger's arguments are derived (kept by other
-- triggers): a change of only those is not a change of the row.
CREATE OR REPLACE FUNCTION elearn_touch_updated_at()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.updated_at IS DISTINCT FROM OLD.updated_at
        OR coalesce(current_setting('elearn.keep_updated_at', true), '') = 'on'
    THEN
        RETURN NEW;
    END IF;
    IF TG_NARGS > 0
        AND (to_jsonb(NEW) - TG_ARGV) - 'updated_at' = (to_jsonb(OLD) - TG_ARGV) - 'updated_at'
    THEN
        RETURN NEW;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
