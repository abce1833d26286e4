-- Version 20: number look-ups (`POST /v1/documents/lookup`) each station made in the last
-- hour, counted before each new one (`[issuance] document_lookups_per_hour`). Every attempt
-- counts, a number the registry does not have too: an answer "no such document" is also
-- something learnt about the registry. Rows older than an hour are deleted by the next look-up
-- of the same station; the audit log keeps the look-ups themselves.
CREATE TABLE document_lookups (
    station  TEXT NOT NULL,
    at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX document_lookups_station_at ON document_lookups (station, at);
