-- Version 22: every OCSP responder certificate certifies a new key (`ocsp-<CA key>`, then
-- `ocsp-<CA key>-k2`, …; docs/relying-parties.md "OCSP"), and `serve` destroys a replaced key in
-- the HSM once each of its certificates has ended: a responder certificate carries
-- id-pkix-ocsp-nocheck, so its short validity is what limits a stolen key. `destroyed_at`
-- records the removal on every row of the key; the rows and certificates stay (stored and
-- cached responses name them).
ALTER TABLE ocsp_responders ADD COLUMN destroyed_at TIMESTAMPTZ;
CREATE INDEX ocsp_responders_not_destroyed ON ocsp_responders (ca_key, key_label)
    WHERE destroyed_at IS NULL;
