-- Version 30: a document's certificates renewed (a renewal completed, at any office) are a change
-- its issuing station is told of (`POST /v1/documents/changes`), as its state changes are: when
-- and by whom (`station/operator`). The list orders a station's documents by their latest change
-- of either kind.
ALTER TABLE documents ADD COLUMN certificates_changed_at TIMESTAMPTZ;
ALTER TABLE documents ADD COLUMN certificates_changed_by TEXT;
CREATE INDEX documents_station_changes ON documents
    (station, (greatest(state_changed_at, certificates_changed_at)), id);
-- Renewals completed before this version: told to their issuing stations at their next sync.
UPDATE documents d SET certificates_changed_at = now(),
    certificates_changed_by = (SELECT s.station || '/' || s.operator FROM service_jobs s
        WHERE s.document_id = d.id AND s.kind = 'renew' AND s.state = 'completed'
        ORDER BY s.updated_at DESC LIMIT 1)
WHERE EXISTS (SELECT 1 FROM service_jobs s
    WHERE s.document_id = d.id AND s.kind = 'renew' AND s.state = 'completed');
