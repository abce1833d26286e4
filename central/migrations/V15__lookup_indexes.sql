-- Version 15: indexes for look-ups every issuance makes, which read whole tables before (the
-- centre_load bench counted ~600 certificate rows read per card at 2 000 cards, growing with
-- the registry; docs/BENCHMARKS.md "central").
-- A job's certificates (complete, abort, revocation of a document, the e-government message):
-- V10 replaced the (job, slot) unique constraint by partial indexes that a plain `job = $1`
-- cannot use.
CREATE INDEX certificates_job ON certificates (job);
-- The station a client certificate belongs to, on every authenticated request.
CREATE INDEX station_certs_serial ON station_certs (serial);

-- A certificate's published status (OCSP, CRL) is `good` whether it is `issued` (certified,
-- its card not yet completed) or `active`: `complete` (issued -> active) no longer queues a
-- new OCSP response. Queuing it made every `complete` wait for the signing worker whenever the
-- worker held that queue row (the DO UPDATE below), and signed two responses per card for
-- nothing. Every change a relying party can see still queues, as in V10.
CREATE OR REPLACE FUNCTION certificates_to_relying_party_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (OLD.state = 'revoked') = (NEW.state = 'revoked')
       AND OLD.revocation_reason IS NOT DISTINCT FROM NEW.revocation_reason
       AND OLD.revoked_at IS NOT DISTINCT FROM NEW.revoked_at THEN
        RETURN NULL;
    END IF;
    INSERT INTO relying_party_queue (kind, issuer_key, serial)
        VALUES ('ocsp', NEW.issuer_key, NEW.serial)
        ON CONFLICT (kind, issuer_key, serial) DO UPDATE SET queued_at = clock_timestamp();
    IF (NEW.state = 'revoked' AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM 'revoked'
                                   OR OLD.revocation_reason IS DISTINCT FROM NEW.revocation_reason))
       OR (TG_OP = 'UPDATE' AND OLD.state = 'revoked' AND NEW.state <> 'revoked') THEN
        INSERT INTO relying_party_queue (kind, issuer_key, serial)
            VALUES ('crl', NEW.issuer_key, '\x'::bytea)
            ON CONFLICT (kind, issuer_key, serial) DO UPDATE SET queued_at = clock_timestamp();
    END IF;
    PERFORM pg_notify('idcentral_relying_parties', NEW.issuer_key);
    RETURN NULL;
END
$$;
