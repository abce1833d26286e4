-- Version 24: which Document Signer signed each card's EF.SOD. A station names the serial
-- number of its Document Signer certificate at `complete` (`document_signer`); the centre
-- checks that it certified that Document Signer for that station and records it here, so a
-- CSCA key withdrawn from the Master List (`idcentral ca withdraw-csca`) flags exactly the
-- cards whose chip data it vouched for. NULL: completed by a station older than the field
-- (the withdrawal then flags the station's cards completed since it first held a Document
-- Signer under the withdrawn key).
ALTER TABLE documents ADD COLUMN document_signer BYTEA
    CHECK (document_signer IS NULL OR length(document_signer) BETWEEN 1 AND 20);
