-- A change a relying party must see — a certificate issued, revoked, held or released, a CA
-- certificate revoked, the CRL that lists it — is signed before the refresh of responses and
-- CRLs whose content did not change (central::public::worker). Until V31 the queue was one
-- first-in, first-out line: with a registry large enough that the refresh of responses near
-- their nextUpdate kept the signing worker busy, a revocation waited behind all of them while
-- the old `good` answer was still served.
ALTER TABLE relying_party_queue ADD COLUMN urgent BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX relying_party_queue_order ON relying_party_queue (urgent DESC, queued_at);

-- V15's trigger, its items urgent (a refresh queued earlier for the same certificate becomes
-- urgent too).
CREATE OR REPLACE FUNCTION certificates_to_relying_party_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (OLD.state = 'revoked') = (NEW.state = 'revoked')
       AND OLD.revocation_reason IS NOT DISTINCT FROM NEW.revocation_reason
       AND OLD.revoked_at IS NOT DISTINCT FROM NEW.revoked_at THEN
        RETURN NULL;
    END IF;
    INSERT INTO relying_party_queue (kind, issuer_key, serial, urgent)
        VALUES ('ocsp', NEW.issuer_key, NEW.serial, true)
        ON CONFLICT (kind, issuer_key, serial)
        DO UPDATE SET queued_at = clock_timestamp(), urgent = true;
    IF (NEW.state = 'revoked' AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM 'revoked'
                                   OR OLD.revocation_reason IS DISTINCT FROM NEW.revocation_reason))
       OR (TG_OP = 'UPDATE' AND OLD.state = 'revoked' AND NEW.state <> 'revoked') THEN
        INSERT INTO relying_party_queue (kind, issuer_key, serial, urgent)
            VALUES ('crl', NEW.issuer_key, '\x'::bytea, true)
            ON CONFLICT (kind, issuer_key, serial)
            DO UPDATE SET queued_at = clock_timestamp(), urgent = true;
    END IF;
    PERFORM pg_notify('idcentral_relying_parties', NEW.issuer_key);
    RETURN NULL;
END
$$;
