-- Version 21: a retired time-stamping key is destroyed in the HSM under dual control
-- (`idcentral ca destroy-tsa-key`, a CA request of kind `destroy-tsa-key` on `ca` 'tsa', approved
-- by a second ca-admin; docs/relying-parties.md "Time-stamps"): the key deletion ceremony the
-- CA/Browser Forum Code Signing Baseline Requirements §6.3.2 ask for within 18 months of a
-- Timestamp Certificate's issuance. The key's row and certificate stay (its tokens verify with
-- it); `destroyed_at` records the removal.
ALTER TABLE tsa_keys ADD COLUMN destroyed_at TIMESTAMPTZ;
ALTER TABLE tsa_keys ADD CONSTRAINT tsa_keys_destroyed_retired
    CHECK (destroyed_at IS NULL OR state = 'retired');

ALTER TABLE ca_requests DROP CONSTRAINT ca_requests_kind_check;
ALTER TABLE ca_requests ADD CONSTRAINT ca_requests_kind_check
    CHECK (kind IN ('rotate', 'revoke-ca', 'destroy-tsa-key'));
ALTER TABLE ca_requests DROP CONSTRAINT ca_requests_ca_check;
ALTER TABLE ca_requests ADD CONSTRAINT ca_requests_ca_check
    CHECK (ca IN ('esign', 'csca', 'station-ca', 'root', 'tsa'));
ALTER TABLE ca_requests ADD CONSTRAINT ca_requests_tsa_is_destruction
    CHECK ((ca = 'tsa') = (kind = 'destroy-tsa-key'));
-- `from_key` names a CA key, or for a destruction a TSA key: two tables, so the foreign key
-- becomes a trigger that checks the one the request's kind names.
ALTER TABLE ca_requests DROP CONSTRAINT ca_requests_from_key_fkey;
CREATE FUNCTION ca_requests_from_key_exists() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'destroy-tsa-key' THEN
        IF NOT EXISTS (SELECT 1 FROM tsa_keys WHERE label = NEW.from_key) THEN
            RAISE EXCEPTION 'ca_requests.from_key: no TSA key %', NEW.from_key
                USING ERRCODE = 'foreign_key_violation';
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM ca_keys WHERE label = NEW.from_key) THEN
        RAISE EXCEPTION 'ca_requests.from_key: no CA key %', NEW.from_key
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER ca_requests_from_key BEFORE INSERT OR UPDATE OF from_key, kind ON ca_requests
    FOR EACH ROW EXECUTE FUNCTION ca_requests_from_key_exists();

-- The journal of a destruction: set and committed just before the HSM is asked to destroy the
-- key, after the key there was checked against its certificate. Without it, an HSM that has no
-- such key means the key is elsewhere (another token, another domain), not that an earlier
-- attempt destroyed it.
ALTER TABLE ca_requests ADD COLUMN hsm_attempted_at TIMESTAMPTZ;
-- An approved destruction the execution refuses (the key no longer retired or in use, missing
-- from the HSM, or not the certificate's key) ends `failed`: approved, never executed, and no
-- longer pending, so that another request may be filed.
ALTER TABLE ca_requests DROP CONSTRAINT ca_requests_state_check;
ALTER TABLE ca_requests ADD CONSTRAINT ca_requests_state_check
    CHECK (state IN ('open', 'approved', 'executed', 'refused', 'expired', 'failed'));
DO $$
DECLARE c TEXT;
BEGIN
    SELECT conname INTO STRICT c FROM pg_constraint
    WHERE conrelid = 'ca_requests'::regclass AND contype = 'c'
      AND pg_get_constraintdef(oid) LIKE '%approved_by IS NOT NULL%';
    EXECUTE format('ALTER TABLE ca_requests DROP CONSTRAINT %I', c);
END $$;
ALTER TABLE ca_requests ADD CONSTRAINT ca_requests_approved
    CHECK ((state IN ('approved', 'executed', 'failed')) = (approved_by IS NOT NULL));

-- The other side of the foreign key the trigger above replaced: a key a request names is not
-- deleted or renamed.
CREATE FUNCTION key_named_by_ca_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.label = OLD.label THEN
        RETURN NEW;
    END IF;
    IF EXISTS (SELECT 1 FROM ca_requests WHERE from_key = OLD.label
               AND (kind = 'destroy-tsa-key') = (TG_TABLE_NAME = 'tsa_keys')) THEN
        RAISE EXCEPTION '%.label %: a CA request names it', TG_TABLE_NAME, OLD.label
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER ca_keys_named_by_request BEFORE DELETE OR UPDATE OF label ON ca_keys
    FOR EACH ROW EXECUTE FUNCTION key_named_by_ca_request();
CREATE TRIGGER tsa_keys_named_by_request BEFORE DELETE OR UPDATE OF label ON tsa_keys
    FOR EACH ROW EXECUTE FUNCTION key_named_by_ca_request();
