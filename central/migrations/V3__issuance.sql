-- Version 3: the national registry the issuance protocol writes (docs/centre.md, "Issuance"):
-- holders and their address history, each station's document-number blocks, document numbers,
-- documents, jobs, holder certificates, the e-government outbox, and stations' audit heads.

-- A holder, once in the country (PINFL unique). Changed data overwrite the row only when the
-- station's clerk confirmed them (`update_holder`); the audit log keeps what changed.
CREATE TABLE holders (
    id                    BIGSERIAL PRIMARY KEY,
    pinfl                 TEXT NOT NULL UNIQUE CHECK (pinfl ~ '^[0-9]{14}$'),
    surname               TEXT NOT NULL,
    given_names           TEXT NOT NULL,
    patronymic            TEXT,
    surname_cyrillic      TEXT,
    given_names_cyrillic  TEXT,
    patronymic_cyrillic   TEXT,
    sex                   TEXT NOT NULL CHECK (sex IN ('M', 'F')),
    date_of_birth         TEXT NOT NULL,
    place_of_birth        TEXT NOT NULL,
    citizenship           TEXT NOT NULL,
    photo_sha256          TEXT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_station       TEXT NOT NULL REFERENCES stations (name),
    created_operator      TEXT NOT NULL,
    updated_at            TIMESTAMPTZ
);

-- Registration addresses: never overwritten; a new row when one differs from the latest.
CREATE TABLE holder_addresses (
    id                BIGSERIAL PRIMARY KEY,
    holder_id         BIGINT NOT NULL REFERENCES holders (id),
    kind              TEXT NOT NULL CHECK (kind IN ('permanent', 'temporary')),
    region            TEXT NOT NULL,
    district          TEXT NOT NULL,
    street            TEXT NOT NULL,
    house             TEXT NOT NULL,
    apartment         TEXT,
    registered_on     TEXT NOT NULL,
    registered_until  TEXT,
    recorded_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    station           TEXT NOT NULL REFERENCES stations (name),
    operator          TEXT NOT NULL
);
CREATE INDEX holder_addresses_holder ON holder_addresses (holder_id, id);

-- Blocks of document numbers, `first..=last` of one series, each assigned to one station;
-- `next` is the next never-used number (`last + 1` when exhausted). Blocks of a series are cut
-- one after another under an advisory lock (numbers.rs), so they never overlap.
CREATE TABLE number_blocks (
    id           BIGSERIAL PRIMARY KEY,
    station      TEXT NOT NULL REFERENCES stations (name),
    series       TEXT NOT NULL CHECK (series ~ '^[A-Z]{2}$'),
    first        INTEGER NOT NULL CHECK (first >= 1),
    last         INTEGER NOT NULL CHECK (last <= 9999999),
    next         INTEGER NOT NULL,
    assigned_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (first <= last),
    CHECK (next BETWEEN first AND last + 1),
    UNIQUE (series, first)
);
CREATE INDEX number_blocks_station ON number_blocks (station, id);

-- Every document number handed out, nationally unique. `released` numbers (never written
-- anywhere) are handed out again first, by the station whose block they are from.
CREATE TABLE document_numbers (
    series    TEXT NOT NULL,
    number    INTEGER NOT NULL,
    block_id  BIGINT NOT NULL REFERENCES number_blocks (id),
    state     TEXT NOT NULL CHECK (state IN ('allocated', 'used', 'spoiled', 'released')),
    job       TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (series, number)
);
CREATE INDEX document_numbers_released ON document_numbers (block_id, number) WHERE state = 'released';

-- Issuance jobs, named by the station's UUID. Each step's request is kept: a repeated request
-- gets the first answer; a different one under the same UUID is a conflict.
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY CHECK (id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    station           TEXT NOT NULL REFERENCES stations (name),
    operator          TEXT NOT NULL,
    holder_id         BIGINT NOT NULL REFERENCES holders (id),
    series            TEXT NOT NULL,
    number            INTEGER NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('reserved', 'certified', 'completed', 'aborted')),
    challenge         BYTEA NOT NULL CHECK (length(challenge) = 32),
    card_serial       TEXT NOT NULL,
    reserve_request   JSONB NOT NULL,
    certify_request   JSONB,
    complete_request  JSONB,
    abort_request     JSONB,
    abort_reason      TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((state = 'aborted') = (abort_reason IS NOT NULL))
);
-- One open issuance per holder in the country.
CREATE UNIQUE INDEX jobs_one_open_per_holder ON jobs (holder_id) WHERE state IN ('reserved', 'certified');
CREATE INDEX jobs_open_since ON jobs (created_at) WHERE state IN ('reserved', 'certified');

-- Documents (cards), written when a job completes.
CREATE TABLE documents (
    id              BIGSERIAL PRIMARY KEY,
    series          TEXT NOT NULL,
    number          INTEGER NOT NULL,
    holder_id       BIGINT NOT NULL REFERENCES holders (id),
    station         TEXT NOT NULL REFERENCES stations (name),
    office          TEXT NOT NULL,
    job             TEXT NOT NULL UNIQUE REFERENCES jobs (id),
    state           TEXT NOT NULL CHECK (state IN ('active', 'suspended', 'revoked', 'expired')),
    date_of_issue   DATE NOT NULL,
    date_of_expiry  DATE NOT NULL,
    card_serial     TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (date_of_expiry > date_of_issue),
    UNIQUE (series, number)
);
-- One active card per holder in the country.
CREATE UNIQUE INDEX documents_one_active_per_holder ON documents (holder_id) WHERE state = 'active';

-- Holder certificates the e-Signature CA issued for a job.
CREATE TABLE certificates (
    serial             BYTEA PRIMARY KEY CHECK (length(serial) BETWEEN 1 AND 20),
    job                TEXT NOT NULL REFERENCES jobs (id),
    holder_id          BIGINT NOT NULL REFERENCES holders (id),
    slot               TEXT NOT NULL,
    profile            TEXT NOT NULL,
    cert_der           BYTEA NOT NULL,
    issuer_key         TEXT NOT NULL REFERENCES ca_keys (label),
    state              TEXT NOT NULL CHECK (state IN ('issued', 'active', 'revoked')),
    revocation_reason  TEXT,
    revoked_at         TIMESTAMPTZ,
    issued_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((state = 'revoked') = (revocation_reason IS NOT NULL)),
    UNIQUE (job, slot)
);

-- Messages to the e-government services: one per completed issuance.
CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    topic         TEXT NOT NULL,
    job           TEXT NOT NULL UNIQUE REFERENCES jobs (id),
    payload       JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at  TIMESTAMPTZ
);

-- Stations' audit logs anchored at the centre: the events pushed and the last head accepted.
CREATE TABLE station_audit_events (
    station    TEXT NOT NULL REFERENCES stations (name),
    seq        BIGINT NOT NULL CHECK (seq >= 1),
    time       TEXT NOT NULL,
    operator   TEXT NOT NULL,
    role       TEXT NOT NULL,
    event_station TEXT NOT NULL,
    action     TEXT NOT NULL,
    object     TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  BYTEA NOT NULL CHECK (length(prev_hash) = 32),
    hash       BYTEA NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (station, seq)
);
CREATE TRIGGER station_audit_events_no_update BEFORE UPDATE OR DELETE ON station_audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER station_audit_events_no_truncate BEFORE TRUNCATE ON station_audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

CREATE TABLE station_audit_heads (
    station      TEXT PRIMARY KEY REFERENCES stations (name),
    seq          BIGINT NOT NULL CHECK (seq >= 1),
    hash         BYTEA NOT NULL CHECK (length(hash) = 32),
    time         TEXT NOT NULL,
    signature    BYTEA NOT NULL,
    accepted_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
