-- Version 18: the time-stamping unit's key rolls over (docs/relying-parties.md "Time-stamping").
-- A TSU key signs for a bounded time (its certificate's privateKeyUsagePeriod, profile `tsa`;
-- 15 months by default, as the CA/Browser Forum Code Signing Baseline Requirements §6.3.2 bound
-- a Timestamp Certificate's key), while its certificate stays valid much longer so that the
-- tokens it signed can be verified. `serve` makes `centre-tsa-<N+1>` before the active key's
-- usage ends; the old row is retired and kept (tokens name their key).
ALTER TABLE tsa_keys
    ADD COLUMN serial          BYTEA,
    ADD COLUMN key_usage_until TIMESTAMPTZ,
    ADD COLUMN state           TEXT NOT NULL DEFAULT 'active'
        CHECK (state IN ('active', 'retired')),
    ADD COLUMN retired_at      TIMESTAMPTZ;
-- A key certified before this version states no usage period: it gets the default profile's
-- 15 months from its certificate, and rolls at the first `serve` when they are (nearly) over.
UPDATE tsa_keys SET key_usage_until = LEAST(not_after, created_at + interval '456 days');
ALTER TABLE tsa_keys ALTER COLUMN key_usage_until SET NOT NULL;
-- One key signs at a time.
CREATE UNIQUE INDEX tsa_keys_one_active ON tsa_keys ((true)) WHERE state = 'active';
