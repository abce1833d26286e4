-- Version 9: CA key rotation under dual control (`idcentral ca …`). A ca-admin files a request,
-- a second ca-admin approves it, and the approval executes it; the request row is also the
-- execution's journal (the new key's label once chosen, its certificate and link certificates
-- once signed), so `idcentral ca recover` finishes an execution a crash interrupted.
CREATE TABLE ca_requests (
    id                 BIGSERIAL PRIMARY KEY,
    kind               TEXT NOT NULL CHECK (kind = 'rotate'),
    ca                 TEXT NOT NULL CHECK (ca IN ('esign', 'csca')),
    from_key           TEXT NOT NULL REFERENCES ca_keys (label),
    state              TEXT NOT NULL CHECK (state IN ('open', 'approved', 'executed', 'refused', 'expired')),
    requested_by       TEXT NOT NULL REFERENCES operators (name),
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at         TIMESTAMPTZ NOT NULL,
    approved_by        TEXT REFERENCES operators (name),
    approved_at        TIMESTAMPTZ,
    refused_by         TEXT REFERENCES operators (name),
    note               TEXT,
    new_key            TEXT CHECK (new_key IS NULL OR new_key ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    new_cert_der       BYTEA,
    -- csca only: ICAO 9303-12's CSCA link certificate (new key under the old) and RFC 4210's
    -- OldWithNew (old key under the new).
    link_new_with_old  BYTEA,
    link_old_with_new  BYTEA,
    executed_at        TIMESTAMPTZ,
    -- Dual control, also in the database: the requester never approves their own request.
    CHECK (approved_by IS NULL OR approved_by <> requested_by),
    CHECK ((state IN ('approved', 'executed')) = (approved_by IS NOT NULL)),
    CHECK ((state = 'executed') = (executed_at IS NOT NULL))
);
-- One pending request per CA.
CREATE UNIQUE INDEX ca_requests_one_pending ON ca_requests (ca) WHERE state IN ('open', 'approved');

-- Link certificates between consecutive keys of a self-signed CA (the CSCA).
CREATE TABLE ca_links (
    certified_key  TEXT NOT NULL REFERENCES ca_keys (label),
    signer_key     TEXT NOT NULL REFERENCES ca_keys (label),
    kind           TEXT NOT NULL CHECK (kind IN ('new-with-old', 'old-with-new')),
    cert_der       BYTEA NOT NULL,
    PRIMARY KEY (certified_key, signer_key)
);

ALTER TABLE ca_keys ADD COLUMN retired_at TIMESTAMPTZ;
