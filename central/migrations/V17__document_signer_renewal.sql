-- Version 17: a station's Document Signer is renewed (`POST /v1/document-signer/renew`,
-- docs/centre.md "Document Signer renewal"): ICAO Doc 9303-12 Table 1 bounds its private key
-- usage to about three months, while its certificate stays valid for the documents it signed.
-- So a station holds several `document-signer` rows, the newest (issued_at) the one it signs
-- with; each other purpose keeps one row per station. Every row names its certificate's serial,
-- which is what the primary key now includes.
ALTER TABLE station_certs DROP CONSTRAINT station_certs_pkey;
ALTER TABLE station_certs ADD PRIMARY KEY (station, purpose, serial);
CREATE UNIQUE INDEX station_certs_one_per_purpose ON station_certs (station, purpose)
    WHERE purpose <> 'document-signer';
