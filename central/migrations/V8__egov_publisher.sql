-- Version 8: the e-government publisher (docs/egov.md). Each outbox message is delivered by a
-- task of `idcentral serve` to the configured endpoint as a JWS signed by the centre's
-- e-government key; this version adds the delivery state to `outbox` and the keys' certificates.

-- The centre's e-government keys in its HSM and their certificates: `jws` signs the messages
-- (`centre-egov-1`, profile `egov-signer`, issued by the National Root CA), `tls-client` is the
-- client key of the mutual TLS connection (`centre-egov-tls-1`, profile `station-identity`,
-- issued by the Station CA). Made once, by `init` or the first `serve` of an older centre.
CREATE TABLE egov_keys (
    label       TEXT PRIMARY KEY CHECK (label ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    purpose     TEXT NOT NULL CHECK (purpose IN ('jws', 'tls-client')),
    state       TEXT NOT NULL CHECK (state IN ('active', 'retired')),
    cert_der    BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX egov_keys_one_active ON egov_keys (purpose) WHERE state = 'active';

-- Delivery state. `pending` messages are claimed by a publisher (`FOR UPDATE SKIP LOCKED`), which
-- moves `next_attempt_at` past the attempt's deadline (a lease: another instance takes the
-- message over only after it) and sets a fresh `claim`; the outcome is recorded only under that
-- claim. `message` is the signed JWS, made at the first attempt and sent unchanged by every
-- retry. After `max_attempts` failures the message is `failed` (the dead letter) until an
-- operator's `idcentral outbox retry`.
ALTER TABLE outbox
    ADD COLUMN status           TEXT NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'delivered', 'failed')),
    ADD COLUMN attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ADD COLUMN next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN last_attempt_at  TIMESTAMPTZ,
    ADD COLUMN last_error       TEXT,
    ADD COLUMN claim            BYTEA CHECK (claim IS NULL OR length(claim) = 16),
    ADD COLUMN message          TEXT,
    ADD COLUMN receipt          JSONB,
    ADD COLUMN receipt_status   INTEGER;
-- A message already marked delivered (none is, before this version) stays delivered.
UPDATE outbox SET status = 'delivered' WHERE delivered_at IS NOT NULL;
ALTER TABLE outbox ADD CONSTRAINT outbox_delivered_has_time
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL));
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_failed ON outbox (id) WHERE status = 'failed';
