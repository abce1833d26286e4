//! `idstation backup`: a copy of the station's registry taken while the station runs, its
//! check, and the end of a restore (docs/station.md "Backup and restore"). The registry is the
//! office's record — holders, documents, cards, certificates, the issuance and service
//! journals, operators and the audit log — and on a standalone station the only one.
//!
//! - **create** (a ca-admin): SQLite's `VACUUM INTO` writes a consistent copy of the database
//!   as of one read transaction (the station may go on working) into a file this command
//!   creates first, empty, private (0600), never over an existing file nor through a symbolic
//!   link, in a directory owned by this user that no other user may write to. The copy is
//!   marked a backup copy (`PRAGMA application_id`), checked as `verify` does, and the backup
//!   audited (`registry.backed-up`: the file, its SHA-256, the copy's last audit event and
//!   hash). Anything failing after the file was created removes it.
//! - **verify** (any operator): the copy's integrity (`PRAGMA integrity_check`), its schema
//!   version, and its audit chain with the checkpoint signatures checked with this station's
//!   audit key (from its certificate chain against the trusted root, as `audit verify-log`); and
//!   whether this station's log records taking it (its SHA-256 in a `registry.backed-up`
//!   event). Only the audit log is chained and signed: the other tables of a copy are vouched
//!   for by that record of its SHA-256, not by the chain.
//! - **restored** (a ca-admin, after the copy was put in place of the registry): the copy's
//!   audit chain verified, on a standalone station the office's number blocks moved on to the
//!   first number not on any card (`--next-number`: cards issued after the backup carry numbers
//!   the copy would hand out again), on an enrolled one the audit events after the copy's last
//!   that the centre holds taken back from it (chained on and signed by this station's audit
//!   key, so its later pushes extend the centre's head again), `registry.restored` audited, the
//!   backup mark cleared. Until then the station refuses to open a registry that is a backup
//!   copy.
//!
//! The HSM's keys are not in it (they never leave the HSM); nor are station.toml and the
//! certificate files of the data dir, which a restore takes from the station's own copy.

use std::io::Write;
use std::path::{Path, PathBuf};

use registry::DocumentNumber;
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
    /// The file is marked a backup copy (every copy `create` writes is).
    pub backup_copy: bool,
    /// This station's log records taking this very file: when and by whom.
    pub recorded: Option<String>,
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
    let text = out
        .to_str()
        .ok_or_else(|| StationError::invalid("out", "the path must be UTF-8 text"))?
        .to_owned();
    check_directory(out)?;
    // What the copy is checked with, before anything is written.
    let opts = crate::audit::checkpoint_trust(st, root, trust)?;
    // Created here, empty and private: VACUUM INTO fills an empty file.
    let f = registry::files::create_new(out)
        .map_err(|e| StationError::invalid("out", format!("{}: {e}", out.display())))?;
    drop(f);
    let copied = copy_into(st, out, &text, &opts);
    let report = match copied {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
    };
    let audited = st.registry.write(|tx| {
        tx.audit(&registry::AuditEntry {
            actor: session.actor(),
            action: "registry.backed-up",
            object: "registry",
            details: &serde_json::json!({
                "file": text, "sha256": report.sha256, "bytes": report.bytes,
                "audit_last_seq": report.last_seq, "audit_last_hash": report.last_hash,
                "holders": report.holders, "documents": report.documents,
            }),
        })
    });
    if let Err(e) = audited {
        let _ = std::fs::remove_file(out);
        return Err(e.into());
    }
    Ok(BackupReport {
        recorded: Some(format!("now, by {}", session.operator())),
        ..report
    })
}

/// The copy written into the empty file `out`, marked, on disk, checked.
fn copy_into(
    st: &Station,
    out: &Path,
    text: &str,
    opts: &registry::VerifyOptions,
) -> Result<BackupReport, StationError> {
    st.registry
        .connection()
        .execute("VACUUM INTO ?1", [text])
        .map_err(|e| StationError::Other(format!("the backup to {text} failed: {e}")))?;
    registry::mark_backup_copy(out)?;
    sync(out)?;
    check(st, out, opts)
}

/// Check the backup `file` (see the module documentation).
pub fn verify(
    st: &Station,
    file: &Path,
    root: &Path,
    trust: &TrustInputs,
) -> Result<BackupReport, StationError> {
    let opts = crate::audit::checkpoint_trust(st, root, trust)?;
    check(st, file, &opts)
}

fn check(
    st: &Station,
    file: &Path,
    opts: &registry::VerifyOptions,
) -> Result<BackupReport, StationError> {
    let named = |e: String| StationError::invalid("backup", format!("{}: {e}", file.display()));
    // Hashed as it is read, not held in memory whole.
    let (bytes, sha256) = hash_file(file).map_err(|e| named(e.to_string()))?;
    let copy = registry::Registry::open_read_only(file).map_err(|e| match e {
        registry::Error::Conflict(m) if m.contains("needs migrating") => named(format!(
            "{m}: a copy taken by an older version is checked once it is put in place \
             (`backup restored` migrates and verifies it); the file itself is left as it is"
        )),
        e => named(e.to_string()),
    })?;
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
    let r = copy
        .verify_audit(opts)
        .map_err(|e| named(format!("its audit log: {e}")))?;
    Ok(BackupReport {
        file: file.to_path_buf(),
        bytes,
        schema_version: copy.schema_version().map_err(|e| named(e.to_string()))?,
        holders: count("holders")?,
        documents: count("documents")?,
        audit_events: r.events,
        last_seq: r.last_seq,
        last_hash: hex::encode(r.last_hash),
        checkpoints: r.checkpoints,
        backup_copy: copy.is_backup_copy().map_err(|e| named(e.to_string()))?,
        recorded: recorded(st, &sha256)?,
        sha256,
    })
}

/// The size and SHA-256 (hex) of `file`, read in blocks.
fn hash_file(file: &Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut f = std::fs::File::open(file)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// When and by whom this station's log records a backup with SHA-256 `sha256`.
fn recorded(st: &Station, sha256: &str) -> Result<Option<String>, StationError> {
    let mut stmt = st
        .registry
        .connection()
        .prepare(
            "SELECT time, operator, details FROM audit_events WHERE action = 'registry.backed-up'
             ORDER BY seq",
        )
        .map_err(registry::Error::from)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(registry::Error::from)?;
    for row in rows {
        let (time, operator, details) = row.map_err(registry::Error::from)?;
        let v: serde_json::Value = serde_json::from_str(&details).unwrap_or_default();
        if v["sha256"] == sha256 {
            return Ok(Some(format!("{time}, by {operator}")));
        }
    }
    Ok(None)
}

/// The backup goes into an existing directory (not a link) owned by this user that no other
/// user may write to, where no one else could swap the new file for a link before the database
/// is written into it.
fn check_directory(out: &Path) -> Result<(), StationError> {
    use std::os::unix::fs::MetadataExt;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let refuse =
        |why: String| StationError::invalid("out", format!("directory {}: {why}", dir.display()));
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| refuse(e.to_string()))?;
    if !meta.is_dir() {
        return Err(refuse("is not a directory (a link is not followed)".into()));
    }
    // SAFETY: geteuid() has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(refuse(format!(
            "belongs to user {}, not to this user ({me}): choose a directory of your own",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(refuse(format!(
            "may be written by other users (mode {:o}): the backup holds every holder's \
             personal data; choose a directory only its owner writes to",
            meta.mode() & 0o7777
        )));
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

/// What `backup restored` did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RestoredReport {
    pub audit_events: u64,
    pub last_seq: u64,
    pub last_hash: String,
    /// The number blocks moved on.
    pub number_blocks: Vec<registry::BlockMoved>,
    pub enrolled: bool,
    /// On an enrolled station: the events of its audit log after the copy's last that the
    /// centre held and the restore took back (`None`: finished without the centre).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_back: Option<crate::centre::audit_push::TakenBack>,
}

/// The first step of a restore on an enrolled station, run before anyone logs in (a refused
/// log-in writes to the audit log, and must come after the events taken back): when the
/// registry in place is a backup copy whose audit chain verifies, the events after its last
/// that the station had anchored at the centre are taken back from it
/// ([`crate::centre::audit_push::take_back`], asked as the station itself, `idstation`).
/// Always tried on an enrolled station's copy — a run without a password must not be able to
/// write a refused log-in into the copy first — and `without_centre` only lets the restore go
/// on when it fails (the centre cannot be reached, or its log differs). Nothing to do on a
/// standalone station or a registry that is no backup copy. What it appends is only what the
/// station's own audit key signed for, so it needs no operator's authority; finishing the
/// restore ([`restored`]) does.
pub fn take_back(
    st: &mut Station,
    without_centre: bool,
    root: &Path,
    trust: &TrustInputs,
) -> Result<BeforeLogIn, StationError> {
    let mut before = BeforeLogIn {
        without: without_centre,
        taken_back: None,
        failed: None,
    };
    if st.config.centre.is_none() || !st.registry.is_backup_copy()? {
        return Ok(before);
    }
    let opts = crate::audit::checkpoint_trust(st, root, trust)?;
    let copy = crate::audit::verify_chain(st, &opts)?;
    let signed =
        |c: &registry::audit::Checkpoint| opts.checkpoint_key.as_ref().is_some_and(|k| c.verify(k));
    let from = (copy.last_seq, copy.last_hash);
    match crate::centre::audit_push::take_back(st, "idstation", &signed, from) {
        Ok(t) => before.taken_back = Some(t),
        Err(e) if without_centre => {
            tracing::warn!(error = %e, "nothing taken back from the centre; the restore goes on without it");
            before.failed = Some(e.to_string());
        }
        Err(e) => return Err(e),
    }
    Ok(before)
}

/// What [`take_back`] did before the log-in, for [`restored`] (made only by [`take_back`]).
pub struct BeforeLogIn {
    without: bool,
    taken_back: Option<crate::centre::audit_push::TakenBack>,
    failed: Option<String>,
}

/// Finish a restore: the registry in place is a backup copy (see the module documentation).
/// `next_number`: on a standalone station, the first document number on no card; on an
/// enrolled one refused (the centre hands out the numbers and knows those it gave). On an
/// enrolled station [`take_back`] has run first.
pub fn restored(
    st: &mut Station,
    session: &Session,
    next_number: Option<&str>,
    centre: BeforeLogIn,
    root: &Path,
    trust: &TrustInputs,
) -> Result<RestoredReport, StationError> {
    let without_centre = centre.without;
    crate::session::require_current(
        &mut st.registry,
        session,
        "finish a restore",
        &[registry::Role::CaAdmin],
    )?;
    if !st.registry.is_backup_copy()? {
        return Err(StationError::Conflict(format!(
            "registry: {} is not a backup copy put back in place: there is no restore to finish",
            st.layout.registry().display()
        )));
    }
    let enrolled = st.config.centre.is_some();
    let next: Option<DocumentNumber> =
        match (next_number, enrolled) {
            (Some(_), true) => return Err(StationError::invalid(
                "next_number",
                "this station is enrolled with a national centre, which hands out its document \
                 numbers and knows those it gave: leave it out",
            )),
            (None, false) => return Err(StationError::invalid(
                "next_number",
                "required on a standalone station: the first document number on no card (cards \
                 issued after the backup carry numbers the copy would hand out again; read the \
                 last one off the cards or PIN letters issued since)",
            )),
            (Some(n), false) => Some(
                crate::records::parse_document(n)
                    .map_err(|e| StationError::invalid("next_number", e.to_string()))?,
            ),
            (None, true) => None,
        };
    if without_centre && !enrolled {
        return Err(StationError::invalid(
            "without_centre",
            "this station is standalone: there is no centre to leave out",
        ));
    }
    let taken_back = centre.taken_back;
    if enrolled && !without_centre && taken_back.is_none() && centre.failed.is_none() {
        return Err(StationError::Conflict(
            "the events this station anchored at the centre after the copy were not taken back \
             before the log-in: run `idstation backup restored` (or finish with \
             --without-centre)"
                .into(),
        ));
    }
    // The file put in place may have been cut short (a copy interrupted by a crash): checked
    // whole, as `backup verify` checks a copy, before anything is written to it.
    let integrity: String = st
        .registry
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| StationError::invalid("registry", e.to_string()))?;
    if integrity != "ok" {
        return Err(StationError::invalid(
            "registry",
            format!(
                "{} is damaged ({integrity}): put an intact copy in place (`idstation backup \
                 verify FILE` first)",
                st.layout.registry().display()
            ),
        ));
    }
    let log = crate::audit::verify_log(st, root, trust)?;
    let office = st.config.station.office.clone();
    let blocks = st.registry.write(|tx| {
        let blocks = match next {
            Some(n) => tx.advance_number_blocks(&office, n)?,
            None => Vec::new(),
        };
        tx.audit(&registry::AuditEntry {
            actor: session.actor(),
            action: "registry.restored",
            object: "registry",
            details: &serde_json::json!({
                "audit_last_seq": log.last_seq, "audit_last_hash": log.last_hash,
                "next_number": next.map(|n| n.to_string()), "number_blocks": blocks,
                "enrolled": enrolled,
                "taken_back_from_centre": taken_back.as_ref().map(|t| t.events),
                "taken_back_after_seq": taken_back.as_ref().map(|t| t.from_seq),
                "take_back_failed": centre.failed,
            }),
        })?;
        // In the same transaction: a crash leaves either the copy still marked and nothing
        // written (run again), or the restore finished — never the event without the mark
        // cleared, which a second run would repeat (blocks moved again, events taken back twice).
        tx.clear_backup_copy()?;
        Ok(blocks)
    })?;
    Ok(RestoredReport {
        audit_events: log.events,
        last_seq: log.last_seq,
        last_hash: log.last_hash,
        number_blocks: blocks,
        enrolled,
        taken_back,
    })
}
