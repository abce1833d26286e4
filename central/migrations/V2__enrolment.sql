-- Version 2: what enrolment issues, and the centre's TLS server certificate.

-- The certificates issued to a station at enrolment, one per purpose. `identity` is the TLS
-- client certificate (Station CA); its serial is what an authenticated request must present.
CREATE TABLE station_certs (
    station    TEXT NOT NULL REFERENCES stations (name),
    purpose    TEXT NOT NULL CHECK (purpose IN ('identity', 'audit', 'document-signer')),
    serial     BYTEA NOT NULL CHECK (length(serial) BETWEEN 1 AND 20),
    cert_der   BYTEA NOT NULL,
    issued_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (station, purpose)
);

-- The centre's TLS server certificates (key in the centre's HSM, certified by the Station CA
-- for the configured public name): one row per key label, replaced when the name changes.
CREATE TABLE server_certs (
    key_label    TEXT PRIMARY KEY CHECK (key_label ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    public_name  TEXT NOT NULL,
    cert_der     BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
