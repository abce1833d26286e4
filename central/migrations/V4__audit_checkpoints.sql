-- The centre's audit-signing key and the signed checkpoints of its audit log
-- (docs/centre.md, "The audit log"; docs/audit-format.md, the station's format).

-- The audit signer: a P-256 key in the centre's HSM (`centre-audit-1`), certified by the
-- National Root CA under the `audit-signer` profile. Made once, by `init` or by the first
-- command that needs it (under the audit log's advisory lock).
CREATE TABLE audit_signer_keys (
    label       TEXT PRIMARY KEY CHECK (label ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    state       TEXT NOT NULL CHECK (state IN ('active', 'retired')),
    cert_der    BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX audit_signer_keys_one_active ON audit_signer_keys (state) WHERE state = 'active';

-- Checkpoints: (seq, hash, time) of an audit event, signed with the audit key over
-- registry::audit::checkpoint_message. Append-only like audit_log.
CREATE TABLE audit_checkpoints (
    -- No foreign key to audit_log: TRUNCATE audit_log must reach its append-only trigger;
    -- `audit verify-log` checks that each checkpoint's event exists with the signed hash.
    seq        BIGINT PRIMARY KEY CHECK (seq >= 1),
    hash       BYTEA NOT NULL CHECK (length(hash) = 32),
    time       TEXT NOT NULL,
    signature  BYTEA NOT NULL,
    key_label  TEXT NOT NULL REFERENCES audit_signer_keys (label)
);
CREATE FUNCTION table_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END
$$;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION table_is_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION table_is_append_only();
-- A signer key is retired, never removed: the checkpoints it signed name it.
CREATE TRIGGER audit_signer_keys_no_delete BEFORE DELETE ON audit_signer_keys
    FOR EACH ROW EXECUTE FUNCTION table_is_append_only();
CREATE TRIGGER audit_signer_keys_no_truncate BEFORE TRUNCATE ON audit_signer_keys
    FOR EACH STATEMENT EXECUTE FUNCTION table_is_append_only();
