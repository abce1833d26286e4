-- Version 10: card services through the centre (issue 16; docs/centre.md, "Card services"):
-- renewal of an issued card's certificates, hold and release (suspend / resume), and
-- registration address changes, each a step of a station's service job named by its UUID and
-- idempotent by (station, job, step).

-- A station's card service job. `kind` says which service; a renewal keeps its challenge and
-- moves open -> certified -> completed | aborted; a hold, a release or an address change is
-- completed by its one step.
CREATE TABLE service_jobs (
    id            TEXT PRIMARY KEY CHECK (id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    station       TEXT NOT NULL REFERENCES stations (name),
    office        TEXT NOT NULL,
    operator      TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('renew', 'hold', 'release', 'address')),
    document_id   BIGINT REFERENCES documents (id),
    holder_id     BIGINT NOT NULL REFERENCES holders (id),
    state         TEXT NOT NULL CHECK (state IN ('reserved', 'certified', 'completed', 'aborted')),
    challenge     BYTEA CHECK (challenge IS NULL OR length(challenge) = 32),
    abort_reason  TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One open renewal per document.
CREATE UNIQUE INDEX service_jobs_one_open_renewal ON service_jobs (document_id)
    WHERE kind = 'renew' AND state IN ('reserved', 'certified');

-- Each step's request and answer: the same request again gets the same answer; another
-- request under the same (job, step) is `job-conflict`.
CREATE TABLE service_steps (
    job       TEXT NOT NULL REFERENCES service_jobs (id),
    step      TEXT NOT NULL,
    request   JSONB NOT NULL,
    response  JSONB NOT NULL,
    at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job, step)
);

-- A renewal's certificates hang on the document's issuance job (as every certificate of the
-- card) and name the service job that made them; a slot has one certificate per issuance and
-- one per renewal.
ALTER TABLE certificates ADD COLUMN service_job TEXT REFERENCES service_jobs (id);
ALTER TABLE certificates DROP CONSTRAINT certificates_job_slot_key;
CREATE UNIQUE INDEX certificates_issuance_slot ON certificates (job, slot) WHERE service_job IS NULL;
CREATE UNIQUE INDEX certificates_service_slot ON certificates (service_job, slot) WHERE service_job IS NOT NULL;

-- When the current hold of a suspended document began.
ALTER TABLE documents ADD COLUMN suspended_at TIMESTAMPTZ;

-- The e-government outbox also carries address changes, which belong to no issuance job:
-- `job` names the issuance or the service job, unique per topic.
ALTER TABLE outbox DROP CONSTRAINT outbox_job_fkey;
ALTER TABLE outbox DROP CONSTRAINT outbox_job_key;
ALTER TABLE outbox ADD CONSTRAINT outbox_topic_job_key UNIQUE (topic, job);

-- A hold released (revoked certificateHold -> active) must leave the next CRL too: queue the
-- CRL when a certificate leaves `revoked` as well as when it enters it.
CREATE OR REPLACE FUNCTION certificates_to_relying_party_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO relying_party_queue (kind, issuer_key, serial)
        VALUES ('ocsp', NEW.issuer_key, NEW.serial)
        ON CONFLICT (kind, issuer_key, serial) DO UPDATE SET queued_at = clock_timestamp();
    IF (NEW.state = 'revoked' AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM 'revoked'
                                   OR OLD.revocation_reason IS DISTINCT FROM NEW.revocation_reason))
       OR (TG_OP = 'UPDATE' AND OLD.state = 'revoked' AND NEW.state <> 'revoked') THEN
        INSERT INTO relying_party_queue (kind, issuer_key, serial)
            VALUES ('crl', NEW.issuer_key, '\x'::bytea)
            ON CONFLICT (kind, issuer_key, serial) DO UPDATE SET queued_at = clock_timestamp();
    END IF;
    PERFORM pg_notify('idcentral_relying_parties', NEW.issuer_key);
    RETURN NULL;
END
$$;

-- The end of a temporary registration (cancellation at the place of stay): its own row, the
-- address row is never changed.
CREATE TABLE holder_address_ends (
    address_id   BIGINT PRIMARY KEY REFERENCES holder_addresses (id),
    ended_on     TEXT NOT NULL,
    station      TEXT NOT NULL REFERENCES stations (name),
    operator     TEXT NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A replacement's link: the document taken out of use names the document that replaced it.
ALTER TABLE documents ADD COLUMN replaced_by BIGINT REFERENCES documents (id);
