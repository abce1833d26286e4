-- Version 6: the role the centre's sessions act as. `idcentral serve` and every command run
-- their statements as `idcentral_app` (each pooled connection does SET ROLE; migrations alone
-- run as the owner): it may read and write the registry, but it has no UPDATE, DELETE or
-- TRUNCATE on the audit tables, so an audit event or checkpoint cannot be changed even where a
-- trigger would be switched off. The role is created by the database administrator
-- (scripts/pg-up.sh does: CREATE ROLE idcentral_app NOLOGIN; GRANT idcentral_app TO <owner>).
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'idcentral_app') THEN
    RAISE EXCEPTION 'role idcentral_app does not exist: create it (CREATE ROLE idcentral_app NOLOGIN; GRANT idcentral_app TO %) before this version of idcentral runs', current_user;
  END IF;
END $$;
GRANT USAGE ON SCHEMA public TO idcentral_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO idcentral_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO idcentral_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO idcentral_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO idcentral_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, audit_checkpoints, station_audit_events FROM idcentral_app;
REVOKE ALL ON refinery_schema_history FROM idcentral_app;
GRANT SELECT ON refinery_schema_history TO idcentral_app;
