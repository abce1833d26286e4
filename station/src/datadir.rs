//! The data dir: where a station keeps its configuration, its private SoftHSM2 token, its
//! registry and the certificates and CRLs it publishes.
//!
//! ```text
//! DIR/station.toml          configuration (written last by `init`: marks an initialised dir)
//! DIR/registry.sqlite       the registry (+ -wal, -shm)
//! DIR/hsm/softhsm2.conf     private SoftHSM2 configuration, DIR/hsm/tokens/ its token store
//! DIR/ca/<label>.pem        CA certificates, one per CA key
//! DIR/crl/<label>.crl       the latest CRL of each CA key (DER)
//! DIR/secrets/              secret files, 0700: hsm-pin (the HSM user PIN `init` draws
//!                           unless given --hsm-pin-file), or ones the operator provisions
//! DIR/locks/<work>.lock     held (flock) by the process doing a piece of work ([`WorkLock`])
//! ```
//!
//! `init` makes DIR 0700 and everything in it 0700 (directories) / 0600 (files); start-up
//! ([`check_private`]) refuses a DIR or HSM PIN file open to group or others. Files are
//! written through `registry::files`: created new, never through a link (docs/security.md).
//!
//! The default location follows the XDG base directory convention:
//! `$XDG_DATA_HOME/idstation`, else `$HOME/.local/share/idstation`.

use std::path::{Path, PathBuf};

use crate::error::StationError;

pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("idstation");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/share/idstation"),
        None => PathBuf::from("idstation-data"),
    }
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join(crate::config::CONFIG_FILE)
    }
    pub fn registry(&self) -> PathBuf {
        self.root.join("registry.sqlite")
    }
    pub fn hsm_dir(&self) -> PathBuf {
        self.root.join("hsm")
    }
    pub fn ca_dir(&self) -> PathBuf {
        self.root.join("ca")
    }
    pub fn crl_dir(&self) -> PathBuf {
        self.root.join("crl")
    }
    pub fn ca_cert(&self, label: &str) -> PathBuf {
        self.ca_dir().join(format!("{label}.pem"))
    }
    pub fn crl(&self, label: &str) -> PathBuf {
        self.crl_dir().join(format!("{label}.crl"))
    }
    pub fn secrets_dir(&self) -> PathBuf {
        self.root.join("secrets")
    }
    /// Where `init` writes the HSM user PIN it draws.
    pub fn hsm_pin_file(&self) -> PathBuf {
        self.secrets_dir().join("hsm-pin")
    }
}

/// Write `bytes` to `path` atomically, replacing it: a temp file created new (O_EXCL,
/// O_NOFOLLOW, 0600) in the same directory, fsync, rename. For files the data dir republishes;
/// a path an operator names goes through [`write_new`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    registry::files::write_atomic(path, bytes)
}

/// Write a new file at an operator-chosen `path` atomically, 0600; an existing file or a
/// symbolic link there is an error and stays untouched (`registry::files::write_new`).
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    registry::files::write_new(path, bytes)
}

/// Refuse an output path (`field`) where anything exists already — a file, or a symbolic
/// link, dangling or not — before any work is done for it.
pub fn check_new_output(field: &str, path: &Path) -> Result<(), StationError> {
    registry::files::check_absent(path)
        .map_err(|e| StationError::invalid(field, format!("{}: {e}", path.display())))
}

/// Start-up check (docs/security.md, private files): the data dir and a file the HSM PIN comes from must
/// be the owner's alone. Group or other permission bits on either are refused, naming the
/// path, the rule and the `chmod` that fixes it.
pub fn check_private(data_dir: &Path, hsm: &hsm::HsmConfig) -> Result<(), StationError> {
    let m = mode(data_dir)?;
    if m & 0o077 != 0 {
        return Err(StationError::Insecure {
            path: data_dir.to_path_buf(),
            rule: format!(
                "data dir has mode {m:04o}: group and others must have no access (mode 0700), since it holds the registry and the HSM token; fix: chmod 700 {}",
                data_dir.display()
            ),
        });
    }
    match secret_file(hsm) {
        Some(p) => check_secret_file(p),
        None => Ok(()),
    }
}

/// A file an HSM secret is read from must be 0600 or tighter.
pub fn check_secret_file(path: &Path) -> Result<(), StationError> {
    let m = mode(path)?;
    if m & 0o077 != 0 {
        return Err(StationError::Insecure {
            path: path.to_path_buf(),
            rule: format!(
                "HSM PIN file has mode {m:04o}: group and others must have no access (mode 0600); fix: chmod 600 {}",
                path.display()
            ),
        });
    }
    Ok(())
}

fn mode(p: &Path) -> Result<u32, StationError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(|e| StationError::io(p, e))
}

/// The file an HSM secret (PKCS#11 user PIN, YubiHSM password) is read from, if any.
pub fn secret_file(hsm: &hsm::HsmConfig) -> Option<&Path> {
    let source = match hsm {
        hsm::HsmConfig::Pkcs11 { pin, .. } => pin,
        hsm::HsmConfig::Yubihsm { password, .. } => password,
    };
    match source {
        hsm::SecretSource::File(p) => Some(p),
    }
}

/// Make every directory under `root` (and `root`) 0700 and every file 0600, without following
/// links: what `init` leaves behind, whatever the umask and whatever the HSM library or SQLite
/// created with their own modes.
pub fn make_private(root: &Path) -> Result<(), StationError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(root).map_err(|e| StationError::io(root, e))?;
    let mode = if meta.is_dir() {
        registry::files::DIR_MODE
    } else if meta.is_file() {
        registry::files::FILE_MODE
    } else {
        return Ok(()); // a link or something else: never followed, never changed
    };
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode))
        .map_err(|e| StationError::io(root, e))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(root).map_err(|e| StationError::io(root, e))? {
            let entry = entry.map_err(|e| StationError::io(root, e))?;
            make_private(&entry.path())?;
        }
    }
    Ok(())
}

/// Work that one process at a time may do, each with its lock file under `DIR/locks/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// An issuance job: its process holds the lock while the job runs, so recovery in another
    /// process never touches a job that is still alive.
    IssuanceJob(i64),
    /// A dual-control CA request being executed (or resumed by recovery).
    CaRequest(i64),
    /// A reservation at the national centre not yet recorded in a local job (the first 64
    /// bits of its job UUID).
    CentreReservation(u64),
    /// A card service (renew, unblock) on a document (its id): one at a time per document, and
    /// recovery never touches a service job whose process is alive.
    CardService(i64),
    /// A renewal of another office's card, by its document ([`Work::centre_renewal`]): one at a
    /// time per document, and recovery never touches one whose process is alive.
    CentreRenewal(u64),
    /// An enrolled station's Document Signer renewal (`crate::document_signer`): one at a
    /// time, so two never make the same next key.
    DocumentSignerRenewal,
}

impl Work {
    /// [`Work::CentreRenewal`] of document `number`.
    pub fn centre_renewal(number: registry::DocumentNumber) -> Work {
        let [a, b] = number.series.map(|c| u64::from(c.saturating_sub(b'A')));
        Work::CentreRenewal((a * 26 + b) * 10_000_000 + u64::from(number.number))
    }

    fn file_name(self) -> String {
        match self {
            Work::IssuanceJob(id) => format!("job-{id}.lock"),
            Work::CaRequest(id) => format!("ca-request-{id}.lock"),
            Work::CentreReservation(id) => format!("centre-reservation-{id:016x}.lock"),
            Work::CardService(id) => format!("card-service-{id}.lock"),
            Work::CentreRenewal(id) => format!("centre-renewal-{id:010}.lock"),
            Work::DocumentSignerRenewal => "document-signer-renewal.lock".to_owned(),
        }
    }

    fn busy(self) -> String {
        match self {
            Work::IssuanceJob(id) => format!("job {id} is being worked on by another process"),
            Work::CaRequest(id) => format!("CA request {id} is being executed by another process"),
            Work::CentreReservation(id) => {
                format!("reservation {id:016x} at the centre is being made by another process")
            }
            Work::CardService(id) => {
                format!("a card service on document {id} is running in another process")
            }
            Work::CentreRenewal(_) => {
                "a renewal of this document is running in another process".to_owned()
            }
            Work::DocumentSignerRenewal => {
                "a Document Signer renewal is running in another process".to_owned()
            }
        }
    }
}

/// An exclusive lock (flock) on a [`Work`]'s lock file, held until dropped; the file is
/// removed on drop. A process that dies loses the lock with its file descriptors.
pub struct WorkLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl WorkLock {
    /// The lock file of `work` in `data_dir`.
    pub fn path(data_dir: &Path, work: Work) -> PathBuf {
        data_dir.join("locks").join(work.file_name())
    }

    /// Take the lock of `work`; a conflict when another process holds it.
    pub fn acquire(data_dir: &Path, work: Work) -> Result<WorkLock, StationError> {
        let path = Self::path(data_dir, work);
        if let Some(dir) = path.parent() {
            registry::files::create_dir_private(dir).map_err(|e| StationError::io(dir, e))?;
        }
        // 0600, and never through a link planted at the lock's name.
        let file =
            registry::files::open_or_create(&path).map_err(|e| StationError::io(&path, e))?;
        file.try_lock()
            .map_err(|_| StationError::Conflict(work.busy()))?;
        Ok(WorkLock { _file: file, path })
    }

    /// Whether a live process holds the lock of `work`.
    pub fn is_held(data_dir: &Path, work: Work) -> bool {
        match std::fs::OpenOptions::new()
            .write(true)
            .open(Self::path(data_dir, work))
        {
            Ok(f) => f.try_lock().is_err(),
            Err(_) => false,
        }
    }
}

impl Drop for WorkLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_whole_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("x.pem");
        write_atomic(&p, b"first version, long").expect("write");
        write_atomic(&p, b"second").expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"second");
        assert_eq!(
            std::fs::read_dir(d.path()).expect("ls").count(),
            1,
            "no temp file left behind"
        );
    }

    #[test]
    fn a_work_lock_is_held_until_dropped_and_refuses_a_second_holder() {
        let d = tempfile::tempdir().expect("tempdir");
        let job = Work::IssuanceJob(7);
        assert!(!WorkLock::is_held(d.path(), job));
        let lock = WorkLock::acquire(d.path(), job).expect("first lock");
        assert!(WorkLock::is_held(d.path(), job));
        assert!(!WorkLock::is_held(d.path(), Work::CaRequest(7)));
        let e = WorkLock::acquire(d.path(), job)
            .err()
            .expect("second lock refused");
        assert!(e.to_string().contains("job 7 is being worked on"), "{e}");
        drop(lock);
        assert!(!WorkLock::is_held(d.path(), job));
        assert!(!WorkLock::path(d.path(), job).exists());
    }
}
