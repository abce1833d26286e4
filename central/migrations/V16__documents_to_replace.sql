-- Version 16: cards whose chip data a relying party can no longer authenticate. When a
-- station is disabled with a reason (`idcentral station disable --reason`), its Document
-- Signer certificate goes on the CSCA's CRL and every EF.SOD it signed fails passive
-- authentication (ICAO 9303-11 §5.1): the station's cards still in use are flagged for
-- replacement in the same transaction, and `idcentral station cards-to-replace` lists them.
-- A replacement (documents.replaced_by) takes a card off the list.
ALTER TABLE documents ADD COLUMN replacement_due TEXT;
ALTER TABLE documents ADD COLUMN replacement_due_at TIMESTAMPTZ;
-- A station's documents (the flagging above); the list reads the flagged ones.
CREATE INDEX documents_station ON documents (station);
CREATE INDEX documents_replacement_due ON documents (replacement_due_at)
    WHERE replacement_due IS NOT NULL;
