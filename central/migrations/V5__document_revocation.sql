-- Version 5: documents taken out of use at the centre (`POST /v1/documents/{d}/revoke`): a lost
-- or stolen document is `lost` (as on a station), and every state change keeps its reason.
-- (Version 4 is left to the centre's own audit checkpoints.)
ALTER TABLE documents DROP CONSTRAINT documents_state_check;
ALTER TABLE documents ADD CONSTRAINT documents_state_check
    CHECK (state IN ('active', 'suspended', 'lost', 'revoked', 'expired'));
ALTER TABLE documents ADD COLUMN state_reason TEXT;
ALTER TABLE documents ADD COLUMN state_changed_at TIMESTAMPTZ;
ALTER TABLE documents ADD COLUMN state_changed_by TEXT;
