-- pg_recsys 0.2.0 → 0.3.0 (ALTER EXTENSION pg_recsys UPDATE): keeps every row, model version and the active model.
-- New in the catalog: the drop guard (drop_guard.sql), an event trigger that refuses DROP EXTENSION pg_recsys and
-- DROP SCHEMA recsys while the extension's tables hold ratings, movies, users, persons or models. The ratings keys
-- moved to their own install files (ratings_primary_key.sql, ratings_references.sql) with unchanged definitions.
\echo Use "ALTER EXTENSION pg_recsys UPDATE TO '0.3.0'" to load this file. \quit

CREATE FUNCTION @extschema@._recsys_refuse_drop_with_data() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, @extschema@, pg_temp AS $$
DECLARE
    target text := CASE tg_tag WHEN 'DROP EXTENSION' THEN 'pg_recsys' ELSE 'recsys' END;
    holding text;
BEGIN
    IF coalesce(current_setting('recsys.allow_drop_with_data', true), 'off') IN ('on', 'true', '1')
       OR current_query() !~* ('(^|[^a-z0-9_$])' || target || '([^a-z0-9_$]|$)') THEN
        RETURN;
    END IF;
    SELECT string_agg(t.name, ', ' ORDER BY t.name) INTO holding
    FROM (VALUES ('ratings', EXISTS (SELECT FROM @extschema@.ratings)), ('movies', EXISTS (SELECT FROM @extschema@.movies)),
                 ('users', EXISTS (SELECT FROM @extschema@.users)), ('persons', EXISTS (SELECT FROM @extschema@.persons)),
                 ('models', EXISTS (SELECT FROM @extschema@.models))) AS t(name, has_rows)
    WHERE t.has_rows;
    IF holding IS NOT NULL THEN
        RAISE EXCEPTION '% would delete the data pg_recsys holds', tg_tag
            USING ERRCODE = '2BP01',
                  DETAIL = format('These tables of the extension have rows: %s.', holding),
                  HINT = 'Keep a copy first (pg_dump --schema=recsys); to drop the extension with its data, SET recsys.allow_drop_with_data = on in this session.';
    END IF;
END
$$;
COMMENT ON FUNCTION @extschema@._recsys_refuse_drop_with_data() IS 'Event trigger: refuses DROP EXTENSION pg_recsys / DROP SCHEMA recsys while ratings, movies, users, persons or models hold rows, unless recsys.allow_drop_with_data is on.';
CREATE EVENT TRIGGER recsys_refuse_drop_with_data ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA') EXECUTE FUNCTION @extschema@._recsys_refuse_drop_with_data();
