-- Version 12: the Station CA rolls over at the centre (`idcentral ca rotate --ca station`,
-- docs/centre.md "Station CA rollover"). Requests may name the Station CA; a station that
-- renews its identity certificate keeps the certificate it renewed with as
-- `identity-previous` (accepted until it expires or the next renewal), so that an answer lost
-- on the way never locks a station out.
ALTER TABLE ca_requests DROP CONSTRAINT ca_requests_ca_check;
ALTER TABLE ca_requests ADD CONSTRAINT ca_requests_ca_check
    CHECK (ca IN ('esign', 'csca', 'station-ca'));

ALTER TABLE station_certs DROP CONSTRAINT station_certs_purpose_check;
ALTER TABLE station_certs ADD CONSTRAINT station_certs_purpose_check
    CHECK (purpose IN ('identity', 'identity-previous', 'audit', 'document-signer'));
