-- Version 11: every process's in-memory copy of the stored OCSP responses
-- (central/src/public/ocsp_cache.rs) is told of each change to `ocsp_responses`: at commit,
-- `NOTIFY idcentral_ocsp_responses, '<issuer key> <serial hex>'` for each row inserted,
-- updated or deleted, and '*' (drop everything) for a TRUNCATE.

CREATE FUNCTION ocsp_responses_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('idcentral_ocsp_responses', OLD.issuer_key || ' ' || encode(OLD.serial, 'hex'));
    ELSE
        PERFORM pg_notify('idcentral_ocsp_responses', NEW.issuer_key || ' ' || encode(NEW.serial, 'hex'));
        IF TG_OP = 'UPDATE' AND (OLD.issuer_key, OLD.serial) IS DISTINCT FROM (NEW.issuer_key, NEW.serial) THEN
            PERFORM pg_notify('idcentral_ocsp_responses', OLD.issuer_key || ' ' || encode(OLD.serial, 'hex'));
        END IF;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER ocsp_responses_notify
    AFTER INSERT OR UPDATE OR DELETE ON ocsp_responses
    FOR EACH ROW EXECUTE FUNCTION ocsp_responses_notify();

CREATE FUNCTION ocsp_responses_notify_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('idcentral_ocsp_responses', '*');
    RETURN NULL;
END
$$;
CREATE TRIGGER ocsp_responses_notify_truncate
    AFTER TRUNCATE ON ocsp_responses
    FOR EACH STATEMENT EXECUTE FUNCTION ocsp_responses_notify_truncate();
