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
