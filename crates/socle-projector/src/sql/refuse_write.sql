CREATE OR REPLACE FUNCTION projector.refuse_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'socle: % is an as-of snapshot and is read-only', TG_TABLE_SCHEMA
        USING ERRCODE = '25006';
END
$$
