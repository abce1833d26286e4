-- Version 29: the centre aborts a renewal whose last step is older than `[issuance]
-- renewal_timeout_seconds` (the sweep of `idcentral serve`), and records that it did: a card
-- left between the renewal's certificates and its completion may carry those certificates,
-- which the abort revoked, and they remain proof that the card is the document's (card-key
-- release for the next renewal or PIN unblock, docs/centre.md "Card management keys").
ALTER TABLE service_jobs ADD COLUMN timed_out_at TIMESTAMPTZ;
ALTER TABLE service_jobs ADD CONSTRAINT service_jobs_timed_out_aborted
    CHECK (timed_out_at IS NULL OR state = 'aborted');
-- The sweep's look-up: open renewals, the longest idle first.
CREATE INDEX service_jobs_open_renewals ON service_jobs (updated_at)
    WHERE kind = 'renew' AND state IN ('reserved', 'certified');
