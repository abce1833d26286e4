//! Versioned schema migrations, tracked in `PRAGMA user_version`.
//!
//! Migration N takes a database at version N-1 to version N inside one transaction. A database
//! whose version is above [`LATEST`] was written by a newer program and is refused.

use rusqlite::{Connection, TransactionBehavior};

use crate::{Error, Result};

/// The newest schema this code knows.
pub const LATEST: i64 = 13;

/// Version 1: the core registry.
const V1: &str = r#"
CREATE TABLE operators (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    role          TEXT NOT NULL CHECK (role IN ('clerk', 'ca-admin', 'auditor')),
    password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2%'),
    active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at    TEXT NOT NULL,
    created_by    TEXT
) STRICT;

CREATE TABLE holders (
    id                   INTEGER PRIMARY KEY,
    pinfl                TEXT NOT NULL UNIQUE
                         CHECK (length(pinfl) = 14 AND pinfl NOT GLOB '*[^0-9]*'),
    surname              TEXT NOT NULL CHECK (length(surname) > 0),
    given_names          TEXT NOT NULL CHECK (length(given_names) > 0),
    patronymic           TEXT,
    surname_cyrillic     TEXT,
    given_names_cyrillic TEXT,
    patronymic_cyrillic  TEXT,
    sex                  TEXT NOT NULL CHECK (sex IN ('M', 'F')),
    date_of_birth        TEXT NOT NULL,
    place_of_birth       TEXT NOT NULL,
    citizenship          TEXT NOT NULL CHECK (length(citizenship) = 3),
    created_at           TEXT NOT NULL,
    created_by           TEXT NOT NULL
) STRICT;
CREATE INDEX holders_surname ON holders (surname COLLATE NOCASE);

-- Registration addresses: a history, never overwritten (triggers below).
CREATE TABLE addresses (
    id               INTEGER PRIMARY KEY,
    holder_id        INTEGER NOT NULL REFERENCES holders (id),
    kind             TEXT NOT NULL CHECK (kind IN ('permanent', 'temporary')),
    region           TEXT NOT NULL,
    district         TEXT NOT NULL,
    street           TEXT NOT NULL,
    house            TEXT NOT NULL,
    apartment        TEXT,
    registered_on    TEXT NOT NULL,
    registered_until TEXT,
    recorded_at      TEXT NOT NULL,
    recorded_by      TEXT NOT NULL,
    CHECK (kind = 'permanent' OR registered_until IS NOT NULL),
    CHECK (registered_until IS NULL OR registered_until > registered_on)
) STRICT;
CREATE INDEX addresses_holder ON addresses (holder_id);
CREATE TRIGGER addresses_no_update BEFORE UPDATE ON addresses
BEGIN SELECT RAISE(ABORT, 'addresses are history: add a new address instead of updating'); END;
CREATE TRIGGER addresses_no_delete BEFORE DELETE ON addresses
BEGIN SELECT RAISE(ABORT, 'addresses are history: they are never deleted'); END;

-- Per-office series blocks and every number ever handed out from them.
CREATE TABLE number_blocks (
    id     INTEGER PRIMARY KEY,
    office TEXT NOT NULL,
    series TEXT NOT NULL CHECK (length(series) = 2 AND series NOT GLOB '*[^A-Z]*'),
    first  INTEGER NOT NULL CHECK (first BETWEEN 1 AND 9999999),
    last   INTEGER NOT NULL CHECK (last BETWEEN first AND 9999999),
    next   INTEGER NOT NULL CHECK (next BETWEEN first AND last + 1)
) STRICT;
CREATE TABLE document_numbers (
    series       TEXT NOT NULL,
    number       INTEGER NOT NULL,
    block_id     INTEGER NOT NULL REFERENCES number_blocks (id),
    office       TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('allocated', 'used', 'spoiled', 'released')),
    allocated_at TEXT NOT NULL,
    changed_at   TEXT NOT NULL,
    reason       TEXT,
    PRIMARY KEY (series, number)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER document_numbers_no_delete BEFORE DELETE ON document_numbers
BEGIN SELECT RAISE(ABORT, 'document numbers are never deleted: mark them spoiled or released'); END;
CREATE TRIGGER document_numbers_forward_only BEFORE UPDATE OF state ON document_numbers
WHEN OLD.state <> 'allocated'
BEGIN SELECT RAISE(ABORT, 'a used, spoiled or released document number cannot change state'); END;

CREATE TABLE documents (
    id             INTEGER PRIMARY KEY,
    series         TEXT NOT NULL,
    number         INTEGER NOT NULL,
    holder_id      INTEGER NOT NULL REFERENCES holders (id),
    office         TEXT NOT NULL,
    date_of_issue  TEXT NOT NULL,
    date_of_expiry TEXT NOT NULL CHECK (date_of_expiry > date_of_issue),
    status         TEXT NOT NULL
                   CHECK (status IN ('active', 'suspended', 'lost', 'revoked', 'expired')),
    UNIQUE (series, number),
    FOREIGN KEY (series, number) REFERENCES document_numbers (series, number)
) STRICT;
-- One active document (and so one active card) per holder.
CREATE UNIQUE INDEX documents_one_active_per_holder ON documents (holder_id) WHERE status = 'active';
CREATE TABLE document_status_history (
    id          INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL REFERENCES documents (id),
    status      TEXT NOT NULL,
    reason      TEXT,
    at          TEXT NOT NULL,
    operator    TEXT NOT NULL
) STRICT;
CREATE INDEX document_status_history_doc ON document_status_history (document_id);

CREATE TABLE cards (
    id          INTEGER PRIMARY KEY,
    chip_serial TEXT NOT NULL UNIQUE CHECK (length(chip_serial) > 0),
    lifecycle   TEXT NOT NULL CHECK (lifecycle IN ('blank', 'personalizing', 'locked', 'destroyed')),
    holder_id   INTEGER REFERENCES holders (id),
    document_id INTEGER REFERENCES documents (id),
    updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE ca_keys (
    id          INTEGER PRIMARY KEY,
    label       TEXT NOT NULL UNIQUE,
    ca          TEXT NOT NULL,
    role        TEXT NOT NULL,
    public_key  BLOB NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL CHECK (state IN ('generated', 'active', 'retired', 'revoked', 'destroyed')),
    certificate BLOB,
    created_at  TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX ca_keys_one_active ON ca_keys (ca) WHERE state = 'active';
CREATE TABLE ca_key_states (
    id        INTEGER PRIMARY KEY,
    key_id    INTEGER NOT NULL REFERENCES ca_keys (id),
    state     TEXT NOT NULL,
    at        TEXT NOT NULL,
    operator  TEXT NOT NULL,
    approvers TEXT NOT NULL DEFAULT '[]',
    note      TEXT
) STRICT;

CREATE TABLE issuance_jobs (
    id           INTEGER PRIMARY KEY,
    holder_id    INTEGER NOT NULL REFERENCES holders (id),
    office       TEXT NOT NULL,
    operator     TEXT NOT NULL,
    station      TEXT NOT NULL,
    series       TEXT,
    number       INTEGER,
    card_serial  TEXT,
    state        TEXT NOT NULL CHECK (state IN ('running', 'completed', 'failed', 'rolled-back')),
    current_step TEXT,
    error        TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    finished_at  TEXT,
    FOREIGN KEY (series, number) REFERENCES document_numbers (series, number)
) STRICT;
-- At most one unfinished job per holder: two stations issuing to one holder cannot both start.
CREATE UNIQUE INDEX issuance_jobs_one_running ON issuance_jobs (holder_id) WHERE state = 'running';
CREATE TABLE job_steps (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES issuance_jobs (id),
    ordinal     INTEGER NOT NULL,
    step        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('started', 'done', 'failed', 'undone')),
    details     TEXT NOT NULL DEFAULT '{}',
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    UNIQUE (job_id, ordinal)
) STRICT;

CREATE TABLE certificates (
    id                INTEGER PRIMARY KEY,
    issuer_key_id     INTEGER NOT NULL REFERENCES ca_keys (id),
    serial            TEXT NOT NULL CHECK (length(serial) > 0 AND serial NOT GLOB '*[^0-9a-f]*'),
    subject           TEXT NOT NULL,
    purpose           TEXT NOT NULL,
    not_before        TEXT NOT NULL,
    not_after         TEXT NOT NULL CHECK (not_after > not_before),
    status            TEXT NOT NULL CHECK (status IN ('issued', 'active', 'revoked', 'expired')),
    revocation_reason TEXT,
    revoked_at        TEXT,
    holder_id         INTEGER REFERENCES holders (id),
    card_id           INTEGER REFERENCES cards (id),
    job_id            INTEGER REFERENCES issuance_jobs (id),
    der               BLOB NOT NULL,
    created_at        TEXT NOT NULL,
    UNIQUE (issuer_key_id, serial),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL AND revocation_reason IS NOT NULL))
) STRICT;

CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY,
    topic      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    acked_at   TEXT,
    acked_by   TEXT
) STRICT;

-- The audit log: append-only; every row carries the hash of the one before it.
CREATE TABLE audit_events (
    seq       INTEGER PRIMARY KEY,
    time      TEXT NOT NULL,
    operator  TEXT NOT NULL,
    role      TEXT NOT NULL,
    station   TEXT NOT NULL,
    action    TEXT NOT NULL,
    object    TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash      BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: UPDATE refused'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit log is append-only: DELETE refused'); END;
CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY,
    hash      BLOB NOT NULL CHECK (length(hash) = 32),
    time      TEXT NOT NULL,
    signature BLOB NOT NULL
) STRICT;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only: UPDATE refused'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only: DELETE refused'); END;
"#;

/// Version 2: what CA key rotation under dual control (docs/rotation.md) and the GUI/CLI
/// queries need — dual-control requests with their approvals, a re-issuance flag on
/// certificates, and indexes for certificate-by-serial, issuance listings, audit date ranges and
/// CRL building.
const V2: &str = r#"
CREATE TABLE ca_requests (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    ca           TEXT NOT NULL,
    payload      TEXT NOT NULL DEFAULT '{}',
    quorum       INTEGER NOT NULL CHECK (quorum >= 1),
    requested_by TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL CHECK (expires_at > created_at),
    state        TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'executed', 'refused', 'expired')),
    updated_at   TEXT NOT NULL
) STRICT;
CREATE TABLE ca_request_approvals (
    request_id INTEGER NOT NULL REFERENCES ca_requests (id),
    operator   TEXT NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (request_id, operator)
) STRICT;
-- Emergency CA revocation (docs/rotation.md): holder certificates to re-issue, listed for the clerks.
ALTER TABLE certificates ADD COLUMN reissue_required INTEGER NOT NULL DEFAULT 0
    CHECK (reissue_required IN (0, 1));
CREATE INDEX certificates_reissue ON certificates (reissue_required) WHERE reissue_required = 1;
CREATE INDEX certificates_serial ON certificates (serial);
CREATE INDEX certificates_issuer_status ON certificates (issuer_key_id, status);
CREATE INDEX certificates_job ON certificates (job_id);
CREATE INDEX issuance_jobs_created ON issuance_jobs (created_at);
CREATE INDEX issuance_jobs_office ON issuance_jobs (office, created_at);
CREATE INDEX issuance_jobs_operator ON issuance_jobs (operator, created_at);
CREATE INDEX audit_events_time ON audit_events (time);
CREATE INDEX documents_holder ON documents (holder_id);
"#;

/// Version 3: the CRLs each CA key has signed. The CRL number of a key is strictly increasing
/// (RFC 5280 §5.2.3): the next one is allocated inside the transaction that records the CRL.
const V3: &str = r#"
CREATE TABLE crls (
    key_id      INTEGER NOT NULL REFERENCES ca_keys (id),
    crl_number  INTEGER NOT NULL CHECK (crl_number >= 1),
    this_update TEXT NOT NULL,
    next_update TEXT NOT NULL CHECK (next_update > this_update),
    der         BLOB NOT NULL,
    PRIMARY KEY (key_id, crl_number)
) STRICT;
"#;

/// Version 4: the execution journal of dual-control CA requests (docs/rotation.md): each step of a key
/// rotation is journaled before its side effect, so recovery can finish an interrupted one; and
/// the outcome of a settled request.
const V4: &str = r#"
CREATE TABLE ca_request_steps (
    id          INTEGER PRIMARY KEY,
    request_id  INTEGER NOT NULL REFERENCES ca_requests (id),
    step        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('started', 'done')),
    details     TEXT NOT NULL DEFAULT '{}',
    started_at  TEXT NOT NULL,
    finished_at TEXT
) STRICT;
CREATE INDEX ca_request_steps_request ON ca_request_steps (request_id);
ALTER TABLE ca_requests ADD COLUMN outcome TEXT;
"#;

/// Version 5: the SHA-256 of the holder's photo, so that a holder who comes back with another
/// photo is noticed like one who comes back with another name (NULL for earlier holders).
const V5: &str = r#"
ALTER TABLE holders ADD COLUMN photo_sha256 TEXT;
"#;

/// Version 6: operator lifecycle (docs/security.md, "Roles and dual control"): wrong
/// passwords in a row and the lock they set after [`crate::MAX_FAILED_LOGINS`], and since when
/// the operator holds their role (created, enabled or given the role), so that an approver who
/// became a ca-admin after a dual-control request was filed cannot approve it.
const V6: &str = r#"
ALTER TABLE operators ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0);
ALTER TABLE operators ADD COLUMN locked INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1));
ALTER TABLE operators ADD COLUMN role_since TEXT;
UPDATE operators SET role_since = created_at;
"#;

/// Version 7: card-service jobs on issued cards (renew, unblock; `crate::service_jobs`) and
/// their journal, apart from issuance jobs so that issuance recovery never sees them. At most
/// one running service job per document.
const V7: &str = r#"
CREATE TABLE service_jobs (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('renew', 'unblock')),
    document_id  INTEGER NOT NULL REFERENCES documents (id),
    holder_id    INTEGER NOT NULL REFERENCES holders (id),
    card_serial  TEXT NOT NULL CHECK (length(card_serial) > 0),
    office       TEXT NOT NULL,
    operator     TEXT NOT NULL,
    station      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('running', 'completed', 'failed', 'rolled-back')),
    current_step TEXT,
    error        TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    finished_at  TEXT
) STRICT;
CREATE UNIQUE INDEX service_jobs_one_running_per_document ON service_jobs (document_id, kind) WHERE state = 'running';
CREATE TABLE service_job_steps (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES service_jobs (id),
    ordinal     INTEGER NOT NULL,
    step        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('started', 'done', 'failed', 'undone')),
    details     TEXT NOT NULL DEFAULT '{}',
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    UNIQUE (job_id, ordinal)
) STRICT;
"#;

/// Version 8: the card's life after the desk (`crate::records::life`): the end of a temporary
/// registration (addresses stay append-only; an end is its own row), replacements (the link
/// old document → new document, and the replacement's own journal), and cards brought back to
/// the office and destroyed.
const V8: &str = r#"
CREATE TABLE address_ends (
    address_id  INTEGER PRIMARY KEY REFERENCES addresses (id),
    ended_on    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL
) STRICT;
CREATE TRIGGER address_ends_no_update BEFORE UPDATE ON address_ends
BEGIN SELECT RAISE(ABORT, 'address ends are history: they are never changed'); END;
CREATE TABLE document_replacements (
    id                 INTEGER PRIMARY KEY,
    old_document_id    INTEGER NOT NULL REFERENCES documents (id),
    holder_id          INTEGER NOT NULL REFERENCES holders (id),
    reason             TEXT NOT NULL CHECK (reason IN ('lost', 'stolen', 'damaged')),
    crl_reason         TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('holding', 'completed', 'rolled-back')),
    issuance_job_floor INTEGER NOT NULL,
    new_document_id    INTEGER REFERENCES documents (id),
    issuance_job_id    INTEGER REFERENCES issuance_jobs (id),
    operator           TEXT NOT NULL,
    station            TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    finished_at        TEXT,
    CHECK ((state = 'completed') = (new_document_id IS NOT NULL AND issuance_job_id IS NOT NULL))
) STRICT;
CREATE UNIQUE INDEX document_replacements_one_open ON document_replacements (old_document_id)
    WHERE state IN ('holding', 'completed');
CREATE TABLE card_returns (
    id           INTEGER PRIMARY KEY,
    card_id      INTEGER NOT NULL UNIQUE REFERENCES cards (id),
    document_id  INTEGER NOT NULL REFERENCES documents (id),
    returned_at  TEXT NOT NULL,
    destroyed    INTEGER NOT NULL CHECK (destroyed IN (0, 1)),
    operator     TEXT NOT NULL
) STRICT;
"#;

/// Version 9: the card access number (CAN) of each card issued with PACE (ICAO 9303-11 §4.4,
/// printed on the card face; `crate::records::can`), drawn per issuance job before the card
/// gets it. Never changed once written.
const V9: &str = r#"
CREATE TABLE document_cans (
    job_id     INTEGER PRIMARY KEY REFERENCES issuance_jobs (id),
    can        TEXT NOT NULL CHECK (length(can) = 6 AND can NOT GLOB '*[^0-9]*'),
    created_at TEXT NOT NULL
) STRICT;
CREATE TRIGGER document_cans_no_update BEFORE UPDATE ON document_cans
BEGIN SELECT RAISE(ABORT, 'a card access number is never changed'); END;
"#;

/// Version 10: the end of the window in which a suspension may be resumed, recorded with the
/// suspension (the national centre's `release_until` on an enrolled station, the station's own
/// `[services] suspension_limit_days` otherwise). Suspensions recorded before it have none.
const V10: &str = r#"
ALTER TABLE document_status_history ADD COLUMN resume_until TEXT
    CHECK (resume_until IS NULL OR status = 'suspended');
"#;

/// Version 11: a replacement's reason may also be `name-change` (the holder's name changed)
/// and `recalled` (the national centre flagged the card): V8's CHECK allowed lost, stolen and
/// damaged only, so a name-change replacement failed at its hold. SQLite cannot change a CHECK
/// in place: the table is made again under the same name, every row kept, its index with it
/// (nothing references the table).
const V11: &str = r#"
CREATE TABLE document_replacements_v11 (
    id                 INTEGER PRIMARY KEY,
    old_document_id    INTEGER NOT NULL REFERENCES documents (id),
    holder_id          INTEGER NOT NULL REFERENCES holders (id),
    reason             TEXT NOT NULL
        CHECK (reason IN ('lost', 'stolen', 'damaged', 'name-change', 'recalled')),
    crl_reason         TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('holding', 'completed', 'rolled-back')),
    issuance_job_floor INTEGER NOT NULL,
    new_document_id    INTEGER REFERENCES documents (id),
    issuance_job_id    INTEGER REFERENCES issuance_jobs (id),
    operator           TEXT NOT NULL,
    station            TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    finished_at        TEXT,
    CHECK ((state = 'completed') = (new_document_id IS NOT NULL AND issuance_job_id IS NOT NULL))
) STRICT;
INSERT INTO document_replacements_v11 SELECT * FROM document_replacements;
DROP TABLE document_replacements;
ALTER TABLE document_replacements_v11 RENAME TO document_replacements;
CREATE UNIQUE INDEX document_replacements_one_open ON document_replacements (old_document_id)
    WHERE state IN ('holding', 'completed');
"#;

/// Version 12: the journal of a replacement of another station's card (a station enrolled with
/// the national centre; `station::services::replace_elsewhere`): this station has no record of
/// the old document, which is held at the centre (under the service job `hold_job`, drawn
/// before the hold is asked for) while the new card is issued here, then revoked there and
/// linked to the new one, or released. One open per old document. A replacement of the
/// station's own card on an enrolled station journals its centre hold's job too
/// (`document_replacements.hold_job`; NULL for those begun before, and on a standalone station).
const V12: &str = r#"
CREATE TABLE centre_replacements (
    id                 INTEGER PRIMARY KEY,
    old_document       TEXT NOT NULL,
    old_office         TEXT NOT NULL,
    pinfl              TEXT NOT NULL,
    hold_job           TEXT NOT NULL UNIQUE,
    reason             TEXT NOT NULL
        CHECK (reason IN ('lost', 'stolen', 'damaged', 'name-change', 'recalled')),
    state              TEXT NOT NULL CHECK (state IN ('holding', 'completed', 'rolled-back')),
    issuance_job_floor INTEGER NOT NULL,
    new_document_id    INTEGER REFERENCES documents (id),
    issuance_job_id    INTEGER REFERENCES issuance_jobs (id),
    operator           TEXT NOT NULL,
    station            TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    finished_at        TEXT,
    CHECK ((state = 'completed') = (new_document_id IS NOT NULL AND issuance_job_id IS NOT NULL))
) STRICT;
CREATE UNIQUE INDEX centre_replacements_one_open ON centre_replacements (old_document)
    WHERE state IN ('holding', 'completed');
ALTER TABLE document_replacements ADD COLUMN hold_job TEXT;
"#;

/// Version 13: the journal of a certificate renewal of another station's card (a station
/// enrolled with the national centre; `station::services::renew_elsewhere`): this station has no
/// record of the document; the renewal is the centre's service job `uuid` (drawn and journaled
/// before the centre is asked), and its new certificates are kept here once the centre issued
/// them (`certificates`, JSON), so that an interrupted renewal is finished on the card, or
/// aborted at the centre before it issued. One running per document.
const V13: &str = r#"
CREATE TABLE centre_renewals (
    id            INTEGER PRIMARY KEY,
    document      TEXT NOT NULL,
    office        TEXT NOT NULL,
    card_serial   TEXT NOT NULL,
    uuid          TEXT NOT NULL UNIQUE,
    state         TEXT NOT NULL CHECK (state IN ('running', 'completed', 'rolled-back')),
    step          TEXT NOT NULL CHECK (step IN ('opened', 'generated', 'certified', 'installed')),
    certificates  TEXT,
    error         TEXT,
    operator      TEXT NOT NULL,
    station       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    finished_at   TEXT,
    CHECK ((step IN ('certified', 'installed')) = (certificates IS NOT NULL))
) STRICT;
CREATE UNIQUE INDEX centre_renewals_one_running ON centre_renewals (document)
    WHERE state = 'running';
"#;

const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12, V13];

/// The schema version of the file (`PRAGMA user_version`; 0 = empty).
pub fn version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Migrate `conn` up to `target` (normally [`LATEST`]). Each step is one transaction.
pub fn migrate(conn: &mut Connection, target: i64) -> Result<()> {
    debug_assert!(target as usize <= MIGRATIONS.len());
    let mut current = version(conn)?;
    if current > LATEST {
        return Err(Error::SchemaTooNew {
            found: current,
            known: LATEST,
        });
    }
    while current < target {
        let next = current + 1;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Re-read under the write lock: another process may have migrated meanwhile.
        let now = version(&tx)?;
        if now >= next {
            tx.commit()?;
            current = now;
            continue;
        }
        tx.execute_batch(MIGRATIONS[current as usize])?;
        tx.pragma_update(None, "user_version", next)?;
        tx.commit()?;
        tracing::info!(from = current, to = next, "registry schema migrated");
        current = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    #[test]
    fn fresh_database_is_at_latest_version_with_wal_and_foreign_keys() {
        let (_d, reg) = crate::testutil::temp_registry();
        assert_eq!(reg.schema_version().unwrap(), LATEST);
        let c = reg.connection();
        let mode: String = c
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = c
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        let fk: i64 = c
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let strict: i64 = c
            .query_row(
                "SELECT count(*) FROM pragma_table_list WHERE schema='main' AND name NOT LIKE 'sqlite_%' AND strict = 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(strict, 0, "every table is STRICT");
    }

    #[test]
    fn a_version_1_database_with_data_migrates_to_latest_and_keeps_its_data_and_chain() {
        use crate::audit::{event_hash, GENESIS_PREV_HASH};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v1.sqlite");
        {
            let mut c = Connection::open(&p).unwrap();
            Registry::configure(&c).unwrap();
            migrate(&mut c, 1).unwrap();
            assert_eq!(version(&c).unwrap(), 1);
            c.execute_batch(
                "INSERT INTO holders (pinfl, surname, given_names, sex, date_of_birth, place_of_birth, citizenship, created_at, created_by)
                 VALUES ('31405850000012', 'Karimova', 'Dilnoza', 'F', '1985-02-14', 'Toshkent', 'UZB', '2026-01-01T00:00:00.000000Z', 'alice');
                 INSERT INTO number_blocks (office, series, first, last, next) VALUES ('TAS01', 'AA', 1, 999999, 2);
                 INSERT INTO document_numbers VALUES ('AA', 1, 1, 'TAS01', 'allocated', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', NULL);
                 INSERT INTO ca_keys (label, ca, role, public_key, fingerprint, state, created_at)
                 VALUES ('esign-1', 'esign', 'issuing', x'00', 'ff', 'active', '2026-01-01T00:00:00.000000Z');
                 INSERT INTO issuance_jobs (holder_id, office, operator, station, series, number, state, created_at, updated_at)
                 VALUES (1, 'TAS01', 'alice', 'S1', 'AA', 1, 'running', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');
                 INSERT INTO certificates (issuer_key_id, serial, subject, purpose, not_before, not_after, status, holder_id, job_id, der, created_at)
                 VALUES (1, '0a', 'CN=K', 'holder-sign', '2026-01-01T00:00:00Z', '2031-01-01T00:00:00Z', 'issued', 1, 1, x'3000', '2026-01-01T00:00:00.000000Z');",
            )
            .unwrap();
            let t = "2026-01-01T00:00:00.000000Z";
            let h = event_hash(
                1,
                [
                    t,
                    "alice",
                    "clerk",
                    "S1",
                    "holder.enrolled",
                    "holder:1",
                    "{}",
                ],
                &GENESIS_PREV_HASH,
            );
            c.execute(
                "INSERT INTO audit_events VALUES (1, ?1, 'alice', 'clerk', 'S1', 'holder.enrolled', 'holder:1', '{}', ?2, ?3)",
                rusqlite::params![t, &GENESIS_PREV_HASH[..], &h[..]],
            )
            .unwrap();
        }
        let mut reg = Registry::open(&p).unwrap();
        assert_eq!(reg.schema_version().unwrap(), LATEST);
        // Data survived.
        let h = reg.holder_by_pinfl("31405850000012").unwrap().unwrap();
        assert_eq!(h.data.surname, "Karimova");
        assert_eq!(reg.unfinished_jobs().unwrap().len(), 1);
        assert_eq!(reg.certificates_by_serial("0a").unwrap().len(), 1);
        // The chain written under v1 still verifies and keeps growing.
        let a = crate::testutil::actor();
        reg.audit(&crate::AuditEntry {
            actor: &a,
            action: "schema.migrated",
            object: "registry",
            details: &serde_json::json!({"to": LATEST}),
        })
        .unwrap();
        assert_eq!(reg.verify_audit(&Default::default()).unwrap().events, 2);
        // What v2 added works: dual-control requests and the serial index.
        let exp = crate::format_time(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
        let b = crate::Actor::new("bob", "ca-admin", "S1");
        let id = reg
            .write(|tx| {
                tx.create_ca_request("rotate", "esign", &serde_json::json!({}), 2, &exp, &a)
            })
            .unwrap();
        assert_eq!(reg.write(|tx| tx.approve_ca_request(id, &b)).unwrap(), 1);
        let idx: i64 = reg
            .connection()
            .query_row("SELECT count(*) FROM sqlite_master WHERE type='index' AND name='certificates_serial'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(idx, 1);
        // The v1 certificate gained the v2 re-issuance flag (default 0) and can be flagged.
        assert_eq!(reg.write(|tx| tx.mark_reissue_for_issuer(1)).unwrap(), 1);
        assert_eq!(reg.certificates_needing_reissue().unwrap().len(), 1);
        // The allocator continues after the v1 number, never reusing it.
        assert_eq!(
            reg.allocate_document_number("TAS01").unwrap().to_string(),
            "AA0000002"
        );
    }

    #[test]
    fn v11_lets_a_replacement_be_for_a_name_change_or_a_recall_and_keeps_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v10.sqlite");
        let mut c = Connection::open(&p).unwrap();
        migrate(&mut c, 10).unwrap();
        // The rows' own references are not what this checks.
        c.pragma_update(None, "foreign_keys", false).unwrap();
        let insert = |c: &Connection, id: i64, old: i64, reason: &str| {
            c.execute(
                "INSERT INTO document_replacements (id, old_document_id, holder_id, reason,
                     crl_reason, state, issuance_job_floor, operator, station, created_at)
                 VALUES (?1, ?2, 1, ?3, 'superseded', 'holding', 0, 'alice', 'S1',
                         '2026-01-01T00:00:00.000000Z')",
                rusqlite::params![id, old, reason],
            )
        };
        insert(&c, 1, 10, "lost").unwrap();
        let refused = insert(&c, 2, 11, "name-change").expect_err("v10 allows three reasons");
        assert!(refused.to_string().contains("CHECK"), "{refused}");
        migrate(&mut c, 11).unwrap();
        insert(&c, 2, 11, "name-change").unwrap();
        insert(&c, 3, 12, "recalled").unwrap();
        assert!(insert(&c, 4, 13, "renamed").is_err());
        let kept: String = c
            .query_row(
                "SELECT reason FROM document_replacements WHERE id = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kept, "lost");
        // One open replacement per document, as before.
        assert!(insert(&c, 5, 10, "damaged").is_err());
    }

    #[test]
    fn database_newer_than_the_code_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.sqlite");
        drop(Registry::open(&p).unwrap());
        let c = Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", LATEST + 7).unwrap();
        drop(c);
        let err = Registry::open(&p).err().expect("must refuse");
        assert!(
            matches!(err, Error::SchemaTooNew { found, known } if found == LATEST + 7 && known == LATEST)
        );
        assert!(err.to_string().contains("newer than this program supports"));
    }
}
