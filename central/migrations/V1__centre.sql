-- The national centre's registry, version 1: CA keys, operators, stations and their enrolment,
-- and the append-only audit log. Later versions add holders, documents, certificates and jobs.

CREATE TABLE ca_keys (
    label       TEXT PRIMARY KEY CHECK (label ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    ca          TEXT NOT NULL CHECK (ca IN ('root', 'esign', 'csca', 'station-ca')),
    state       TEXT NOT NULL CHECK (state IN ('active', 'retired', 'revoked')),
    cert_der    BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One active key per CA: a rotation switches keys in one transaction.
CREATE UNIQUE INDEX ca_keys_one_active ON ca_keys (ca) WHERE state = 'active';

CREATE TABLE operators (
    name           TEXT PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    role           TEXT NOT NULL CHECK (role IN ('ca-admin', 'auditor')),
    password_hash  TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    active         BOOLEAN NOT NULL DEFAULT TRUE,
    failed_logins  INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE stations (
    name                   TEXT PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    office                 TEXT NOT NULL CHECK (office ~ '^[A-Z]{3}[0-9]{2}$'),
    state                  TEXT NOT NULL CHECK (state IN ('awaiting-enrolment', 'enrolled', 'disabled')),
    -- SHA-256 of the one-time enrolment code; the code itself is shown once and never stored.
    enrolment_code_sha256  BYTEA CHECK (enrolment_code_sha256 IS NULL OR length(enrolment_code_sha256) = 32),
    enrolment_expires_at   TIMESTAMPTZ,
    enrolled_at            TIMESTAMPTZ,
    disabled_at            TIMESTAMPTZ,
    created_by             TEXT NOT NULL REFERENCES operators (name),
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((state = 'awaiting-enrolment') = (enrolment_code_sha256 IS NOT NULL))
);

-- The audit log: one hash chain (registry::audit's event encoding, docs/audit-format.md).
CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY CHECK (seq >= 1),
    time       TEXT NOT NULL,
    operator   TEXT NOT NULL,
    role       TEXT NOT NULL,
    station    TEXT NOT NULL,
    action     TEXT NOT NULL,
    object     TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  BYTEA NOT NULL CHECK (length(prev_hash) = 32),
    hash       BYTEA NOT NULL CHECK (length(hash) = 32)
);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
