-- The name of the shard this database is (recorded by alembic/env.py).
CREATE OR REPLACE FUNCTION elearn_shard()
RETURNS text
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_shard text;
BEGIN
    SELECT m.value INTO v_shard FROM shard_meta m WHERE m.key = 'shard';
    IF v_shard IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'EL404',
            MESSAGE = 'this database does not know its shard: shard_meta has no ''shard'' row '
                      '(run the migrations)';
    END IF;
    RETURN v_shard;
END;
$$;
