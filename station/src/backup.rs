//! `idstation backup`: a copy of the station's registry taken while the station runs, and its
//! check (docs/station.md "Backup and restore"). The registry is the office's record — holders,
//! documents, cards, certificates, the issuance and service journals, operators and the audit
//! log — and on a standalone station the only one.
//!
//! - **create** (a ca-admin): SQLite's `VACUUM INTO` writes a consistent copy of the database
//!   as of one read transaction (the station may go on working) into a file this command
//!   creates first, empty, private (0600), never over an existing file nor through a symbolic
//!   link, in a directory no other user may write to. The copy is then opened and checked as
//!   `verify` does, and the backup is audited (`registry.backed-up`: the file, its SHA-256,
//!   the copy's last audit event and hash) — it holds every holder's personal data.
//! - **verify** (any operator): the copy's integrity (`PRAGMA integrity_check`), its schema
//!   version, and its audit chain with the checkpoint signatures checked with this station's
//!   audit key (from its certificate chain against the trusted root, as `audit verify-log`):
//!   a copy of another station, or one edited since, fails.
//!
//! The HSM's keys are not in it (they never leave the HSM); nor are station.toml and the
//! certificate files of the data dir, which a restore takes from the station's own copy.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::TrustInputs;
use crate::error::StationError;
use crate::session::Session;
use crate::Station;

/// What a backup holds, as `create` and `verify` report it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BackupReport {
    pub file: PathBuf,
    pub sha256: String,
    pub bytes: u64,
    pub schema_version: i64,
    pub holders: i64,
    pub documents: i64,
    pub audit_events: u64,
    pub last_seq: u64,
    pub last_hash: String,
    pub checkpoints: u64,
}

/// Write a backup of the registry to the new file `out` (see the module documentation).
pub fn create(
    st: &mut Station,
    session: &Session,
    out: &Path,
    root: &Path,
    trust: &TrustInputs,
) -> Result<BackupReport, StationError> {
    crate::session::require_current(
        &mut st.registry,
        session,
        "back up the registry",
        &[registry::Role::CaAdmin],
    )?;
    check_directory(out)?;
    // Created here, empty and private: VACUUM INTO fills an empty file.
    let f = registry::files::create_new(out)
        .map_err(|e| StationError::invalid("out", format!("{}: {e}", out.display())))?;
    drop(f);
    let written = st
        .registry
        .connection()
        .execute("VACUUM INTO ?1", [out.to_string_lossy().as_ref()]);
    if let Err(e) = written {
        let _ = std::fs::remove_file(out);
        return Err(StationError::Other(format!(
            "the backup to {} failed: {e}",
            out.display()
        )));
    }
    sync(out)?;
    let report = verify(st, out, root, trust)?;
    st.registry.write(|tx| {
        tx.audit(&registry::AuditEntry {
            actor: session.actor(),
            action: "registry.backed-up",
            object: "registry",
            details: &serde_json::json!({
                "file": out.display().to_string(), "sha256": report.sha256,
                "bytes": report.bytes, "audit_last_seq": report.last_seq,
                "audit_last_hash": report.last_hash, "holders": report.holders,
                "documents": report.documents,
            }),
        })
    })?;
    Ok(report)
}

/// Check the backup `file` (see the module documentation).
pub fn verify(
    st: &Station,
    file: &Path,
    root: &Path,
    trust: &TrustInputs,
) -> Result<BackupReport, StationError> {
    let named = |e: String| StationError::invalid("backup", format!("{}: {e}", file.display()));
    let bytes = std::fs::read(file).map_err(|e| named(e.to_string()))?;
    let copy = registry::Registry::open_read_only(file).map_err(|e| named(e.to_string()))?;
    let integrity: String = copy
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| named(e.to_string()))?;
    if integrity != "ok" {
        return Err(named(format!("the database is damaged: {integrity}")));
    }
    let count = |table: &str| -> Result<i64, StationError> {
        copy.connection()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .map_err(|e| named(e.to_string()))
    };
    let opts = crate::audit::checkpoint_trust(st, root, trust)?;
    let r = copy
        .verify_audit(&opts)
        .map_err(|e| named(format!("its audit log: {e}")))?;
    Ok(BackupReport {
        file: file.to_path_buf(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        bytes: bytes.len() as u64,
        schema_version: copy.schema_version().map_err(|e| named(e.to_string()))?,
        holders: count("holders")?,
        documents: count("documents")?,
        audit_events: r.events,
        last_seq: r.last_seq,
        last_hash: hex::encode(r.last_hash),
        checkpoints: r.checkpoints,
    })
}

/// The backup goes into a directory that exists and that no other user may write to (where
/// another user could swap the new file for a link before the database is written into it).
fn check_directory(out: &Path) -> Result<(), StationError> {
    use std::os::unix::fs::MetadataExt;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let meta = std::fs::metadata(&dir)
        .map_err(|e| StationError::invalid("out", format!("directory {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(StationError::invalid(
            "out",
            format!("{} is not a directory", dir.display()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(StationError::invalid(
            "out",
            format!(
                "directory {} may be written by other users (mode {:o}): the backup holds \
                 every holder's personal data; choose a directory only its owner writes to",
                dir.display(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// The backup on disk before it is reported.
fn sync(out: &Path) -> Result<(), StationError> {
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(out)
        .map_err(|e| StationError::Other(format!("{}: {e}", out.display())))?;
    (&f).flush()
        .and_then(|()| f.sync_all())
        .map_err(|e| StationError::Other(format!("{}: {e}", out.display())))
}
