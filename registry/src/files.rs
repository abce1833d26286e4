//! Files the station writes: created new, never through a symbolic link, owner-only.
//!
//! Every file is opened with `O_CREAT | O_EXCL | O_NOFOLLOW` and mode 0600 (set again with
//! `fchmod`, so the umask cannot widen or narrow it); directories are made 0700. An output path
//! that already exists — a file, or a symbolic link planted there, dangling or not — is an
//! error that says so; nothing at or behind it is read, truncated or replaced. The parent
//! directories of a path the operator names are the operator's: a link among them is followed
//! (docs/security.md).

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode of every file the station creates.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory the station creates.
pub const DIR_MODE: u32 = 0o700;

/// Creates `path` as a new, empty file, mode 0600, without following a symbolic link.
/// An existing file or link at `path` is an [`io::ErrorKind::AlreadyExists`] error whose
/// message says which (the caller adds the path).
pub fn create_new(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| explain(path, e))?;
    f.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

/// Opens `path` for writing, creating it 0600 if absent, without following a symbolic link
/// (lock files, which outlive a killed process and are opened again).
pub fn open_or_create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| explain(path, e))
}

/// Writes `bytes` to the new file `path` (see [`create_new`]) and syncs it.
pub fn write_new_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = create_new(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Writes a new file atomically: a temporary created new beside `path`, synced, then linked
/// to `path`, which must not exist (a file or link there is an error, as in [`create_new`]).
/// Readers see either no file or the whole one.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    // link(2) does not follow a link at the new name and fails if the name exists.
    let linked = std::fs::hard_link(&tmp, path).map_err(|e| explain(path, e));
    let _ = std::fs::remove_file(&tmp);
    linked?;
    sync_dir(path);
    Ok(())
}

/// Writes `bytes` to `path` atomically, replacing what is there: a temporary created new
/// beside it, synced, renamed over `path`. A symbolic link at `path` is replaced, never
/// followed. For the files a data dir republishes (CA certificates, the latest CRL).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path);
    Ok(())
}

/// Fails, as [`create_new`] would, when anything (a file, a directory, a link) is at `path`:
/// lets a caller refuse an output path before it does work that the write would conclude.
pub fn check_absent(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Err(explain(path, io::Error::from(io::ErrorKind::AlreadyExists))),
    }
}

/// Creates directory `path` and any missing parents, each new one 0700. An existing
/// directory is accepted; a symbolic link at `path` is refused.
pub fn create_dir_private(path: &Path) -> io::Result<()> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "is a symbolic link; the station does not write through links (remove it or choose another directory)",
            ));
        }
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

fn write_temp(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut tries = 0;
    loop {
        let tmp = dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        match write_new_synced(&tmp, bytes) {
            Ok(()) => return Ok(tmp),
            // A temporary left by a killed process with the same pid: take the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 64 => tries += 1,
            Err(e) => {
                if e.kind() != io::ErrorKind::AlreadyExists {
                    let _ = std::fs::remove_file(&tmp);
                }
                return Err(e);
            }
        }
    }
}

fn sync_dir(path: &Path) {
    if let Ok(d) = File::open(path.parent().unwrap_or(Path::new("."))) {
        let _ = d.sync_all();
    }
}

/// Turns EEXIST / ELOOP into a message that says what is in the way.
fn explain(path: &Path, e: io::Error) -> io::Error {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link
        && (e.kind() == io::ErrorKind::AlreadyExists || e.raw_os_error() == Some(libc::ELOOP))
    {
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a symbolic link is in the way; the station never writes through a link (remove it or choose another path)",
        )
    } else if e.kind() == io::ErrorKind::AlreadyExists {
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            "already exists; the station never overwrites an output file (choose a new path or move the old file away)",
        )
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn new_files_are_0600_and_an_existing_file_is_refused_untouched() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.crl");
        write_new(&p, b"first").unwrap();
        assert_eq!(mode(&p), 0o600);
        let e = write_new(&p, b"second").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("never overwrites"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        let e = create_new(&p).unwrap_err();
        assert!(e.to_string().contains("never overwrites"), "{e}");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }

    #[test]
    fn a_planted_symlink_is_refused_and_its_target_untouched() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let dangling = d.path().join("nowhere");
        for (link, target) in [("to-file", &victim), ("dangling", &dangling)] {
            let p = d.path().join(link);
            std::os::unix::fs::symlink(target, &p).unwrap();
            for r in [
                write_new(&p, b"evil").map(|_| ()),
                create_new(&p).map(|_| ()),
                write_new_synced(&p, b"evil"),
                open_or_create(&p).map(|_| ()),
            ] {
                let e = r.unwrap_err();
                assert!(
                    e.to_string().contains("symbolic link is in the way"),
                    "{link}: {e}"
                );
            }
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(
            !dangling.exists(),
            "nothing created behind the dangling link"
        );
    }

    #[test]
    fn atomic_replace_swaps_a_link_for_a_file_without_following_it() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let p = d.path().join("esign-ca-1.crl");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        write_atomic(&p, b"crl").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(mode(&p), 0o600);
        write_atomic(&p, b"crl 2").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"crl 2");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            2,
            "no temporary left"
        );
    }

    #[test]
    fn directories_are_0700_and_a_link_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b");
        create_dir_private(&p).unwrap();
        assert_eq!((mode(&p), mode(&d.path().join("a"))), (0o700, 0o700));
        create_dir_private(&p).unwrap();
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&p, &l).unwrap();
        let e = create_dir_private(&l).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }
}
