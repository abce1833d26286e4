-- Version 12: the Station CA and the National Root roll over at the centre (`idcentral ca
-- rotate --ca station|root`, docs/centre.md "Station CA rollover", "National Root rollover").
-- Requests may name them (the root's link certificates go to `ca_links`); a station that
-- renews its identity certificate keeps the certificate it renewed with as
-- `identity-previous` (accepted until it expires or the next renewal), so that an answer lost
-- on the way never locks a station out.
ALTER TABLE ca_requests DROP CONSTRAINT ca_requests_ca_check;
ALTER TABLE ca_requests ADD CONSTRAINT ca_requests_ca_check
    CHECK (ca IN ('esign', 'csca', 'station-ca', 'root'));

ALTER TABLE station_certs DROP CONSTRAINT station_certs_purpose_check;
ALTER TABLE station_certs ADD CONSTRAINT station_certs_purpose_check
    CHECK (purpose IN ('identity', 'identity-previous', 'audit', 'document-signer'));
