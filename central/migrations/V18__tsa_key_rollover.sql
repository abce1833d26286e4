-- Version 18: the time-stamping unit's key rolls over (docs/relying-parties.md "Time-stamps",
-- `central::public::tsa_keys`). A TSU key signs for a bounded time (its certificate's
-- privateKeyUsagePeriod, profile `tsa`: 450 days, within the 15 months the CA/Browser Forum
-- Code Signing Baseline Requirements §6.3.2 allow a Timestamp Certificate's key), while its
-- certificate stays valid much longer so that the tokens it signed can be verified. `serve`
-- makes `centre-tsa-<N+1>` before the active key's usage ends: the label is recorded `pending`
-- before its key is generated (an interrupted rollover is finished with that key, which never
-- signed), then one transaction makes it `active` and the old row `retired` (kept: tokens name
-- their key).
ALTER TABLE tsa_keys
    ADD COLUMN serial          BYTEA UNIQUE CHECK (length(serial) BETWEEN 1 AND 20),
    ADD COLUMN key_usage_until TIMESTAMPTZ,
    ADD COLUMN state           TEXT NOT NULL DEFAULT 'active'
        CHECK (state IN ('pending', 'active', 'retired')),
    ADD COLUMN retired_at      TIMESTAMPTZ;
ALTER TABLE tsa_keys ALTER COLUMN cert_der DROP NOT NULL;
ALTER TABLE tsa_keys ALTER COLUMN not_after DROP NOT NULL;
-- A key certified before this version states no usage period: it gets the default profile's
-- 450 days from its certificate, and rolls at the first `serve` when they are (nearly) over.
UPDATE tsa_keys SET key_usage_until = LEAST(not_after, created_at + interval '450 days');
ALTER TABLE tsa_keys ADD CONSTRAINT tsa_keys_certified CHECK (
    state = 'pending'
    OR (cert_der IS NOT NULL AND not_after IS NOT NULL AND key_usage_until IS NOT NULL));
ALTER TABLE tsa_keys ADD CONSTRAINT tsa_keys_retired_at CHECK (
    (state = 'retired') = (retired_at IS NOT NULL));
-- One key signs at a time; one rollover is under way at a time.
CREATE UNIQUE INDEX tsa_keys_one_active ON tsa_keys ((true)) WHERE state = 'active';
CREATE UNIQUE INDEX tsa_keys_one_pending ON tsa_keys ((true)) WHERE state = 'pending';
