-- Version 26: the look-up limit also counts per operator of a station (`[issuance]
-- document_lookups_per_operator_per_hour`), so one clerk cannot spend the office's hour alone.
-- The station's own limit stays the bound: operator names are the station's word, and a
-- stolen station key could invent any. Rows from before this version name no operator and
-- count for the station only.
ALTER TABLE document_lookups ADD COLUMN operator TEXT;
CREATE INDEX document_lookups_operator_at ON document_lookups (station, operator, at);
