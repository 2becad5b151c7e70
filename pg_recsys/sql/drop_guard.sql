-- The drop guard: DROP EXTENSION pg_recsys (or DROP SCHEMA recsys) deletes the extension's tables with it, every
-- rating, movie, person and model version. While any of them holds rows the drop is refused (2BP01), unless the
-- session sets recsys.allow_drop_with_data = on first. The event trigger (src/drop_guard.rs) sees the statement's
-- parse tree before anything is dropped, however the statement was built (DO, EXECUTE, a function).
CREATE FUNCTION _recsys_refuse_drop_with_data() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'recsys_drop_guard';
COMMENT ON FUNCTION _recsys_refuse_drop_with_data() IS 'Event trigger: reads the parse tree of each DROP EXTENSION / DROP SCHEMA and refuses one that drops pg_recsys or recsys while ratings, movies, users, persons or models hold rows, unless recsys.allow_drop_with_data is on.';
CREATE EVENT TRIGGER recsys_refuse_drop_with_data ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA') EXECUTE FUNCTION _recsys_refuse_drop_with_data();
