-- Version 14: a station's certificates revoked when it is cut off for cause (`idcentral station
-- disable --reason R`, docs/centre.md "Cutting a station off"). Each revoked certificate names
-- the CA key that issued it (found by signature when revoked), whose CRL lists it: the Station
-- CA for the identity, the National Root for the audit signer, the CSCA for the Document Signer
-- (so inspection systems that check the CSCA's CRL refuse documents whose EF.SOD it signs).
ALTER TABLE station_certs ADD COLUMN issuer_key TEXT REFERENCES ca_keys (label);
ALTER TABLE station_certs ADD COLUMN revoked_at TIMESTAMPTZ;
ALTER TABLE station_certs ADD COLUMN revocation_reason TEXT CHECK (revocation_reason IS NULL OR
    revocation_reason IN ('keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation'));
ALTER TABLE station_certs ADD CONSTRAINT station_certs_revocation_complete
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL)
           AND (revoked_at IS NULL OR issuer_key IS NOT NULL));

CREATE OR REPLACE VIEW issued_status AS
    SELECT issuer_key, serial, state, revoked_at, revocation_reason FROM certificates
    UNION ALL
    SELECT parent_key, serial, 'revoked', revoked_at, revocation_reason FROM ca_keys
    WHERE state = 'revoked' AND parent_key IS NOT NULL AND serial IS NOT NULL
    UNION ALL
    SELECT issuer_key, serial, 'revoked', revoked_at, revocation_reason FROM station_certs
    WHERE revoked_at IS NOT NULL;
GRANT SELECT ON issued_status TO idcentral_app;
