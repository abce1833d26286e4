-- Version 25: the look-up limit counts distinct document numbers. A number a station looked up
-- within the last hour is not counted again when it looks it up again — a retry after a lost
-- answer, or the same card on the desk twice, teaches nothing new about the registry — and is
-- answered even when the hour is full. Rows from before this version name no number and count
-- once each, as before.
ALTER TABLE document_lookups ADD COLUMN document TEXT;
