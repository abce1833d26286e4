-- Version 23: the CSCA Master List (ICAO Doc 9303-12 §5.3, §9; docs/relying-parties.md "CSCA
-- Master List"): the signed list of the State's CSCA certificates that `serve` publishes at
-- /ca/csca-master-list.ml, signed by a Master List Signer whose key (`centre-mls-<N>`) is in the
-- HSM and whose certificate the active CSCA key issued.

-- Every Master List Signer certificate; the newest row signs. A key a newer one replaced is
-- destroyed in the HSM once its certificate has ended (`destroyed_at`); rows are kept.
CREATE TABLE master_list_signers (
    label            TEXT PRIMARY KEY CHECK (label ~ '^centre-mls-[1-9][0-9]{0,8}$'),
    csca_key         TEXT NOT NULL REFERENCES ca_keys (label),
    serial           BYTEA NOT NULL UNIQUE CHECK (length(serial) BETWEEN 1 AND 20),
    cert_der         BYTEA NOT NULL,
    key_usage_until  TIMESTAMPTZ NOT NULL,
    not_after        TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    destroyed_at     TIMESTAMPTZ
);

-- Every Master List signed; the newest is served.
CREATE TABLE master_lists (
    id              BIGSERIAL PRIMARY KEY,
    signer          TEXT NOT NULL REFERENCES master_list_signers (label),
    content_sha256  BYTEA NOT NULL CHECK (length(content_sha256) = 32),
    certificates    INT NOT NULL CHECK (certificates >= 1),
    der             BYTEA NOT NULL,
    signed_at       TIMESTAMPTZ NOT NULL
);

-- A CSCA key withdrawn under dual control (`idcentral ca withdraw-csca`, a CA request of kind
-- `withdraw-csca`): a self-signed CSCA cannot be revoked by a CRL (ICAO 9303-12 §5), so a
-- compromised one, once rotated out, is taken off the Master List, which is signed again without
-- it or its link certificates.
ALTER TABLE ca_keys ADD COLUMN withdrawn_at TIMESTAMPTZ;
ALTER TABLE ca_keys ADD CONSTRAINT ca_keys_withdrawn_csca
    CHECK (withdrawn_at IS NULL OR (ca = 'csca' AND state <> 'active'));
ALTER TABLE ca_requests DROP CONSTRAINT ca_requests_kind_check;
ALTER TABLE ca_requests ADD CONSTRAINT ca_requests_kind_check
    CHECK (kind IN ('rotate', 'revoke-ca', 'destroy-tsa-key', 'withdraw-csca'));
ALTER TABLE ca_requests DROP CONSTRAINT ca_requests_revoke_has_reason;
ALTER TABLE ca_requests ADD CONSTRAINT ca_requests_revoke_has_reason
    CHECK ((kind IN ('revoke-ca', 'withdraw-csca')) = (reason IS NOT NULL));
ALTER TABLE ca_requests ADD CONSTRAINT ca_requests_withdraw_is_csca
    CHECK (kind <> 'withdraw-csca' OR ca = 'csca');
