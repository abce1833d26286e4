//! The idstation registry: holders, registration addresses, documents, cards, certificates,
//! CA keys, operators, issuance jobs with their journaled steps, an outbox for other government
//! systems, and a tamper-evident audit log — all in one SQLite file.
//!
//! The file runs in WAL mode with `synchronous=FULL` (a committed transaction survives a power
//! cut), `foreign_keys=ON`, STRICT tables and a busy timeout. Every write goes through a
//! [`Tx`], which is a `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so two
//! processes that read-then-write (document number allocation, audit append) are serialised by
//! SQLite itself. Dropping a [`Tx`] without [`Tx::commit`] rolls everything back, so a rejected
//! value never leaves a partial write behind.
//!
//! The audit log format (hash encoding, checkpoints, export folder) is specified in
//! `docs/audit-format.md`; [`audit`] and [`export`] implement it.
#![forbid(unsafe_code)]

pub mod audit;
pub mod export;
pub mod files;
pub mod jobs;
pub mod numbers;
pub mod passwords;
pub mod records;
pub mod rotation;
pub mod schema;
pub mod service_jobs;
pub mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub use audit::{AuditEntry, AuditEvent, Checkpoint, VerifyOptions, VerifyReport};
pub use export::{
    ExportFormat, ExportRange, ExportReport, ExportRequest, ExportSummary, VerifyChecks,
};
pub use jobs::{
    Completion, IssuanceFilter, Job, JobState, NewJob, Rollback, RollbackSummary, Step, StepState,
};
pub use numbers::{BlockMoved, DocumentNumber, NumberBlock, NumberState};
pub use records::*;
pub use rotation::{time_in, KeyGeneration, ReissueEntry, RequestStep};
pub use service_jobs::{NewServiceJob, ServiceJob, ServiceKind, ServiceStep};

/// Everything that can go wrong in the registry. Messages name the field and the rule.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value was refused by validation; nothing was written.
    #[error("{field} {value:?} refused: {rule}")]
    Invalid {
        field: String,
        value: String,
        rule: String,
    },
    /// The change conflicts with the registry's state (duplicate, one-active-card rule, ...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A record that the operation needs does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The database was written by a newer version of idstation.
    #[error(
        "database schema version {found} is newer than this program supports (latest known: {known}); \
         refusing to open it — upgrade idstation"
    )]
    SchemaTooNew { found: i64, known: i64 },
    /// The audit chain in the database is broken at `seq`.
    #[error("audit log broken at sequence {seq}: {reason}")]
    AuditBroken { seq: u64, reason: String },
    /// An export folder did not verify.
    #[error("audit export does not verify: {0}")]
    ExportInvalid(String),
    /// The caller's signing function failed.
    #[error("signing failed: {0}")]
    Signer(String),
    /// A password was refused or could not be hashed (the password itself is never named).
    #[error("password: {0}")]
    Password(String),
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value has an unexpected type.
    #[error("sqlite value: {0}")]
    SqlValue(#[from] rusqlite::types::FromSqlError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `PRAGMA application_id` of a backup copy ("IDBK"): a station refuses to work on it until
/// the restore is finished.
pub const BACKUP_COPY_ID: i32 = 0x4944_424B;

/// Mark the database file `path` (a copy `VACUUM INTO` wrote) a backup copy, without opening it
/// as a registry (which would turn it to WAL mode and migrate it).
pub fn mark_backup_copy(path: &Path) -> Result<()> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "application_id", BACKUP_COPY_ID)?;
    conn.close().map_err(|(_, e)| Error::Sqlite(e))
}

impl Error {
    pub(crate) fn invalid(field: &str, value: impl Into<String>, rule: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.to_string(),
            value: value.into(),
            rule: rule.into(),
        }
    }
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A signing function supplied by the caller: given the message bytes, it returns a DER
/// ECDSA P-256 signature over SHA-256(message) — the station passes its HSM audit key, tests a
/// software key. Its error is only displayed, so it must not carry secrets.
pub type SignFn<'a, E> = dyn Fn(&[u8]) -> std::result::Result<Vec<u8>, E> + 'a;

/// Who does something: recorded in the audit log and on every state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub operator: String,
    pub role: String,
    pub station: String,
}

impl Actor {
    pub fn new(operator: &str, role: &str, station: &str) -> Self {
        Actor {
            operator: operator.into(),
            role: role.into(),
            station: station.into(),
        }
    }
}

/// An open registry file.
pub struct Registry {
    conn: Connection,
    path: PathBuf,
}

/// Bytes of the file SQLite may memory-map for reads (its default cap is 2 GiB).
pub(crate) const MMAP_SIZE: i64 = 1 << 31;

/// How long a writer waits for another process's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Registry {
    /// Open (creating if needed) the registry at `path` and migrate it to the latest schema.
    /// Refuses a database whose schema is newer than this code ([`Error::SchemaTooNew`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Self::configure(&conn)?;
        let mut reg = Registry {
            conn,
            path: path.to_path_buf(),
        };
        schema::migrate(&mut reg.conn, schema::LATEST)?;
        Ok(reg)
    }

    /// Open an existing registry read-only (auditors' tools). Does not migrate; refuses a
    /// database that is older or newer than this code.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
        let v = schema::version(&conn)?;
        if v > schema::LATEST {
            return Err(Error::SchemaTooNew {
                found: v,
                known: schema::LATEST,
            });
        }
        if v < schema::LATEST {
            return Err(Error::Conflict(format!(
                "database schema version {v} needs migrating to {}; open it read-write once",
                schema::LATEST
            )));
        }
        Ok(Registry {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn configure(conn: &Connection) -> Result<()> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // journal_mode returns a row; pragma_update_and_check reads it.
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Conflict(format!(
                "journal_mode: SQLite refused WAL (got {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Memory-mapped reads: large scans (verification, export) avoid a read() per page.
        conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
        Ok(())
    }

    /// The file this registry lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64> {
        schema::version(&self.conn)
    }

    /// Whether this file is a backup copy not yet put back in use (its `PRAGMA application_id`
    /// is [`BACKUP_COPY_ID`], which `idstation backup create` sets in the copy and
    /// `idstation backup restored` clears).
    pub fn is_backup_copy(&self) -> Result<bool> {
        let id: i32 = self
            .conn
            .pragma_query_value(None, "application_id", |r| r.get(0))?;
        Ok(id == BACKUP_COPY_ID)
    }

    /// Mark this file a backup copy (`true`) or a registry in use (`false`).
    pub fn set_backup_copy(&self, copy: bool) -> Result<()> {
        self.conn.pragma_update(
            None,
            "application_id",
            if copy { BACKUP_COPY_ID } else { 0 },
        )?;
        Ok(())
    }

    /// Begin a write transaction (`BEGIN IMMEDIATE`). Commit with [`Tx::commit`]; dropping it
    /// rolls back.
    pub fn transaction(&mut self) -> Result<Tx<'_>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        Ok(Tx { tx })
    }

    /// Run `f` in one write transaction and commit if it returns `Ok`.
    pub fn write<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let tx = self.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// The raw connection, for read queries this crate does not offer. Do not write through it:
    /// writes belong in a [`Tx`].
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// A write transaction (`BEGIN IMMEDIATE`). All mutating registry operations live here so that
/// the caller can group them — e.g. a state change and its audit event — into one atomic commit.
pub struct Tx<'a> {
    tx: rusqlite::Transaction<'a>,
}

impl Tx<'_> {
    /// Make every change of this transaction durable (`synchronous=FULL`).
    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }

    /// Undo every change of this transaction (also what dropping it does).
    pub fn rollback(self) -> Result<()> {
        self.tx.rollback()?;
        Ok(())
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.tx
    }

    /// Clear the backup-copy mark ([`Registry::set_backup_copy`]) in this transaction: the
    /// mark is in the database header (`PRAGMA application_id`), written through the pager like
    /// any page, so it goes with the transaction's other changes or not at all.
    pub fn clear_backup_copy(&self) -> Result<()> {
        self.tx.pragma_update(None, "application_id", 0)?;
        Ok(())
    }

    /// The transaction's connection, for bulk loads (benchmark fixtures, imports). Writes
    /// through it skip this crate's validation; the schema's CHECKs and triggers still apply.
    #[doc(hidden)]
    pub fn raw_connection(&self) -> &Connection {
        &self.tx
    }
}

/// The current time as RFC 3339 UTC with microseconds, fixed width (`2026-11-25T12:00:00.000000Z`),
/// so that text order is time order.
pub fn now_rfc3339() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// `t` in UTC as the registry (and the audit log) stores times: RFC 3339 with six fractional
/// digits and `Z`, so that stored times compare as text in time order.
pub fn format_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    pub fn temp_registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().expect("tempdir");
        let reg = Registry::open(dir.path().join("registry.sqlite")).expect("open");
        (dir, reg)
    }

    pub fn actor() -> Actor {
        Actor::new("alice", "clerk", "TAS01-ST1")
    }
}

#[cfg(test)]
mod backup_mark_tests {
    use super::testutil::temp_registry;

    /// The backup-copy mark is cleared with the transaction that clears it, or not at all.
    #[test]
    fn the_backup_mark_goes_with_its_transaction() {
        let (dir, mut reg) = temp_registry();
        reg.set_backup_copy(true).unwrap();
        let tx = reg.transaction().unwrap();
        tx.clear_backup_copy().unwrap();
        tx.rollback().unwrap();
        assert!(reg.is_backup_copy().unwrap(), "rolled back: still marked");
        let tx = reg.transaction().unwrap();
        tx.clear_backup_copy().unwrap();
        tx.commit().unwrap();
        assert!(!reg.is_backup_copy().unwrap());
        drop(reg);
        let again = super::Registry::open(dir.path().join("registry.sqlite")).unwrap();
        assert!(!again.is_backup_copy().unwrap(), "durable");
    }
}
