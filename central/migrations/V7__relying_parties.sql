-- Version 7: what the centre publishes for relying parties (docs/relying-parties.md): the
-- delegated OCSP responders, the OCSP responses signed ahead of time, the CRLs, the
-- time-stamping unit, and the queue that tells `idcentral serve` what to sign again.

-- One delegated OCSP responder certificate per issuing CA key at a time (the newest row of a CA
-- key that has not expired); the key (`ocsp-<ca key>`) stays in the HSM, the certificate is
-- issued again before it expires. Rows are kept: responses in caches name old ones.
CREATE TABLE ocsp_responders (
    id          BIGSERIAL PRIMARY KEY,
    ca_key      TEXT NOT NULL REFERENCES ca_keys (label),
    key_label   TEXT NOT NULL CHECK (key_label ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    serial      BYTEA NOT NULL UNIQUE CHECK (length(serial) BETWEEN 1 AND 20),
    cert_der    BYTEA NOT NULL,
    not_after   TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ocsp_responders_newest ON ocsp_responders (ca_key, not_after DESC);

-- The OCSP response of every certificate a CA key issued, signed ahead of time (RFC 5019 §2.2.2
-- CertID with SHA-1), refreshed before nextUpdate and at once after a revocation.
CREATE TABLE ocsp_responses (
    issuer_key    TEXT NOT NULL REFERENCES ca_keys (label),
    serial        BYTEA NOT NULL CHECK (length(serial) BETWEEN 1 AND 20),
    status        TEXT NOT NULL CHECK (status IN ('good', 'revoked')),
    revoked_at    TIMESTAMPTZ,
    reason        TEXT,
    response_der  BYTEA NOT NULL,
    produced_at   TIMESTAMPTZ NOT NULL,
    next_update   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer_key, serial),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE INDEX ocsp_responses_next_update ON ocsp_responses (next_update);

-- The newest CRL of each CA key (RFC 5280 §5): cRLNumber strictly increasing per key.
CREATE TABLE crls (
    issuer_key   TEXT PRIMARY KEY REFERENCES ca_keys (label),
    crl_number   BIGINT NOT NULL CHECK (crl_number >= 1),
    crl_der      BYTEA NOT NULL,
    this_update  TIMESTAMPTZ NOT NULL,
    next_update  TIMESTAMPTZ NOT NULL
);

-- The time-stamping unit's key (`centre-tsa-1`) and its certificate (National Root CA).
CREATE TABLE tsa_keys (
    label       TEXT PRIMARY KEY CHECK (label ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    cert_der    BYTEA NOT NULL,
    not_after   TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Every time-stamp token issued: its serial number is unique by this key (RFC 3161 §2.4.2).
CREATE TABLE tsa_tokens (
    serial        BYTEA PRIMARY KEY CHECK (length(serial) BETWEEN 1 AND 20),
    gen_time      TIMESTAMPTZ NOT NULL,
    imprint_alg   TEXT NOT NULL,
    imprint       BYTEA NOT NULL,
    tsa_key       TEXT NOT NULL REFERENCES tsa_keys (label)
);

-- What to sign again: ('ocsp', CA key, serial) for one certificate's response, ('crl', CA key,
-- '') for a CA key's CRL. Filled by the trigger below on every issuance and revocation (the
-- issuance steps, a document's revocation, an abort, the job timeout), and by `serve`'s refresh
-- before a nextUpdate; emptied by `serve` with FOR UPDATE SKIP LOCKED.
CREATE TABLE relying_party_queue (
    kind        TEXT NOT NULL CHECK (kind IN ('ocsp', 'crl')),
    issuer_key  TEXT NOT NULL REFERENCES ca_keys (label),
    serial      BYTEA NOT NULL,
    queued_at   TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (kind, issuer_key, serial)
);

CREATE FUNCTION certificates_to_relying_party_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- DO UPDATE (not DO NOTHING): a row the worker holds right now makes this wait for its
    -- commit and then queues again, so a change made while it signs is never lost.
    INSERT INTO relying_party_queue (kind, issuer_key, serial)
        VALUES ('ocsp', NEW.issuer_key, NEW.serial)
        ON CONFLICT (kind, issuer_key, serial) DO UPDATE SET queued_at = clock_timestamp();
    IF NEW.state = 'revoked' AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM 'revoked') THEN
        INSERT INTO relying_party_queue (kind, issuer_key, serial)
            VALUES ('crl', NEW.issuer_key, '\x'::bytea)
            ON CONFLICT (kind, issuer_key, serial) DO UPDATE SET queued_at = clock_timestamp();
    END IF;
    PERFORM pg_notify('idcentral_relying_parties', NEW.issuer_key);
    RETURN NULL;
END
$$;
CREATE TRIGGER certificates_relying_party_queue
    AFTER INSERT OR UPDATE OF state, revocation_reason, revoked_at ON certificates
    FOR EACH ROW EXECUTE FUNCTION certificates_to_relying_party_queue();

-- A centre upgraded to this version: every certificate it issued and every CA key's CRL.
INSERT INTO relying_party_queue (kind, issuer_key, serial)
    SELECT 'ocsp', issuer_key, serial FROM certificates ON CONFLICT DO NOTHING;
INSERT INTO relying_party_queue (kind, issuer_key, serial)
    SELECT 'crl', label, '\x'::bytea FROM ca_keys ON CONFLICT DO NOTHING;

-- V6's default privileges give idcentral_app these tables; tokens and responders are never
-- changed once written.
REVOKE UPDATE, DELETE, TRUNCATE ON tsa_tokens FROM idcentral_app;
