-- Version 13: emergency revocation of a CA certificate at the centre (`idcentral ca revoke-ca`,
-- docs/centre.md "Emergency: CA certificate revocation"). A request of kind `revoke-ca` names
-- the key and the RFC 5280 reason; its execution revokes the key's certificate, which its parent
-- (the National Root key that signed it) publishes on its CRL, and flags the holder
-- certificates the key issued for re-issuance.
ALTER TABLE ca_requests DROP CONSTRAINT ca_requests_kind_check;
ALTER TABLE ca_requests ADD CONSTRAINT ca_requests_kind_check
    CHECK (kind IN ('rotate', 'revoke-ca'));
ALTER TABLE ca_requests ADD COLUMN reason TEXT CHECK (reason IS NULL OR reason IN
    ('keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation'));
-- The journal of a revocation: when the revocation committed, and how many holder certificates
-- it flagged (`idcentral ca recover` finishes a request whose revocation committed).
ALTER TABLE ca_requests ADD COLUMN revoked_at TIMESTAMPTZ;
ALTER TABLE ca_requests ADD COLUMN flagged INTEGER;
ALTER TABLE ca_requests ADD CONSTRAINT ca_requests_revoke_has_reason
    CHECK ((kind = 'revoke-ca') = (reason IS NOT NULL));

-- A revoked CA key's certificate as its parent's CRL lists it: the parent key, the serial
-- (big-endian unsigned bytes, as `certificates.serial`), the time and the reason.
ALTER TABLE ca_keys ADD COLUMN parent_key TEXT REFERENCES ca_keys (label);
ALTER TABLE ca_keys ADD COLUMN serial BYTEA CHECK (serial IS NULL OR length(serial) BETWEEN 1 AND 20);
ALTER TABLE ca_keys ADD COLUMN revoked_at TIMESTAMPTZ;
ALTER TABLE ca_keys ADD COLUMN revocation_reason TEXT;

-- Holder certificates whose issuing CA key was revoked: to be issued again (`ca reissue-list`).
ALTER TABLE certificates ADD COLUMN reissue_request BIGINT REFERENCES ca_requests (id);

-- What each CA key's CRL and OCSP responder publish: the holder certificates it issued and the
-- CA certificates it signed that were revoked here.
CREATE VIEW issued_status AS
    SELECT issuer_key, serial, state, revoked_at, revocation_reason FROM certificates
    UNION ALL
    SELECT parent_key, serial, 'revoked', revoked_at, revocation_reason FROM ca_keys
    WHERE state = 'revoked' AND parent_key IS NOT NULL AND serial IS NOT NULL;
GRANT SELECT ON issued_status TO idcentral_app;
