//! A cross-process lock over a SoftHSM2 token directory, held around every call into the
//! module, so that no process of ours ever reads a token file while another rewrites it.
//!
//! Why SoftHSM2 2.6 needs it (source: SoftHSMv2 v2.6.1, `src/lib/object_store/`):
//! - Rewriting a file: `ObjectFile::store()` opens the object file, takes an `fcntl` write
//!   lock (`File::lock`), and `ObjectFile::writeAttributes()` truncates it (`File::truncate`)
//!   and writes the generation and attributes through a buffered stdio `FILE*`, then calls
//!   `objectFile.unlock()`. The buffered bytes reach the file only at `fclose` in `~File`,
//!   *after* the lock is released. For that moment the file is empty or partial while
//!   unlocked.
//! - Who rewrites: every successful or failed `C_Login` (`Token::loginUser` in
//!   `src/lib/slot_mgr/Token.cpp` calls `OSToken::setTokenFlags`, which stores
//!   `token.object`); `C_InitToken`/`C_InitPIN`/`C_SetPIN`; every object creation, key
//!   generation or attribute change (`OSToken::createObject` → `ObjectFile(.., isNew)` →
//!   `store()`, and the token's `generation` file).
//! - Who reads in that window: `C_Initialize` builds the `ObjectStore`, which opens every
//!   token directory (`ObjectStore::ObjectStore` → `OSToken::OSToken` →
//!   `ObjectFile::refresh(true)`); a `token.object` read empty marks the token invalid and
//!   `ObjectStore` drops it ("Failed to open token"). The slot list is built once, in
//!   `C_Initialize` (`SoftHSM.cpp` `C_GetSlotList` → `SlotManager::getSlotList` only walks
//!   the slots made then), so that process never sees the token: "token not found", for the
//!   process's whole life, and no retry can help. In a process that is already running,
//!   `C_GetTokenInfo`/`C_Login` read the flags through `ObjectFile::isValid()` →
//!   `refresh()` and answer `CKR_GENERAL_ERROR` when they read a partial file, and
//!   `OSToken::index()` marks the token invalid for good when the token object was found
//!   invalid; object look-ups re-index the token directory when its generation changed and
//!   read other processes' new object files.
//!
//! So the cure is to never let a module call of ours overlap another process's write: every
//! call that may write (initialisation, log-in, token and PIN set-up, key generation,
//! session close) runs under an exclusive `flock(2)` on `<tokendir>/.idstation-token.lock`,
//! every other call (slot and token enumeration, object search, attribute reads, signing)
//! under a shared one. The lock is held for one module call or one short sequence of them
//! (never across card I/O or user input) and is released when the guard drops. Since the
//! whole file write, including its `fclose`, happens inside the writer's module call, a
//! reader holding the shared lock never sees a half-written file.
//!
//! `flock` locks belong to an open file description, so two stores in one process (two
//! descriptors) exclude each other just as two processes do. A module other than SoftHSM2
//! (a network HSM, a YubiHSM's PKCS#11 module) keeps its own consistency; for it the lock
//! is a no-op.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{HsmError, Result};

/// Name of the lock file inside the token directory. SoftHSM2 only looks at sub-directories
/// of its token directory (`ObjectStore::ObjectStore` → `Directory::getSubDirs`), so a plain
/// file there is never taken for a token.
pub const LOCK_FILE_NAME: &str = ".idstation-token.lock";

/// Default configuration path of Debian's SoftHSM2 when `SOFTHSM2_CONF` is unset
/// (softhsm2.conf(5)).
const SOFTHSM2_DEFAULT_CONF: &str = "/etc/softhsm/softhsm2.conf";

/// What a module call may do to the token files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads only: may run beside other readers.
    Read,
    /// May rewrite token files: runs alone.
    Write,
}

/// The lock of one token directory, opened once per store (or per module set-up).
#[derive(Debug)]
pub(crate) struct TokenLock {
    /// `None` for modules that need no lock (not SoftHSM2).
    file: Option<File>,
    path: Option<PathBuf>,
}

/// Holds the lock until dropped.
#[must_use]
pub(crate) struct Held<'a> {
    file: Option<&'a File>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.file {
            // Closing the descriptor would release the lock too; unlocking keeps the
            // descriptor for the next call. An unlock failure leaves nothing to do.
            let _ = f.unlock();
        }
    }
}

impl TokenLock {
    /// The lock for `module` loaded with `env`: SoftHSM2's token directory from its
    /// configuration file, or no lock for another module.
    pub(crate) fn for_module(module: &Path, env: &BTreeMap<String, String>) -> Result<Self> {
        let Some(token_dir) = softhsm2_token_dir(module, env)? else {
            return Ok(TokenLock {
                file: None,
                path: None,
            });
        };
        let path = token_dir.join(LOCK_FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // Never follow a link planted in the token directory.
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| HsmError::Operation {
                op: "open token lock",
                reason: format!("{}: {e}", path.display()),
            })?;
        Ok(TokenLock {
            file: Some(file),
            path: Some(path),
        })
    }

    /// Take the lock for a call with `access`, waiting for other holders.
    pub(crate) fn hold(&self, access: Access) -> Result<Held<'_>> {
        let Some(file) = &self.file else {
            return Ok(Held { file: None });
        };
        let taken = match access {
            Access::Read => file.lock_shared(),
            Access::Write => file.lock(),
        };
        taken.map_err(|e| HsmError::Operation {
            op: "lock token directory",
            reason: format!(
                "{}: {e}",
                self.path.as_deref().unwrap_or(Path::new("?")).display()
            ),
        })?;
        Ok(Held { file: Some(file) })
    }

    /// The lock file, if this module has one.
    #[cfg(test)]
    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// Is `module` SoftHSM2? By its file name (`libsofthsm2.so`), or by the configuration the
/// caller hands it.
fn is_softhsm2(module: &Path, env: &BTreeMap<String, String>) -> bool {
    env.contains_key("SOFTHSM2_CONF")
        || module
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("softhsm2"))
}

/// SoftHSM2's token directory for `module` with `env`: `directories.tokendir` of the file
/// named by `SOFTHSM2_CONF` (in `env`, else the process environment, else the default path).
/// `None` when the module is not SoftHSM2.
fn softhsm2_token_dir(module: &Path, env: &BTreeMap<String, String>) -> Result<Option<PathBuf>> {
    if !is_softhsm2(module, env) {
        return Ok(None);
    }
    let conf = env
        .get("SOFTHSM2_CONF")
        .cloned()
        .or_else(|| std::env::var("SOFTHSM2_CONF").ok())
        .unwrap_or_else(|| SOFTHSM2_DEFAULT_CONF.to_owned());
    let text = std::fs::read_to_string(&conf).map_err(|e| HsmError::Module {
        path: module.to_owned(),
        reason: format!("cannot read its configuration {conf}: {e}"),
    })?;
    match parse_token_dir(&text) {
        Some(dir) => Ok(Some(dir)),
        None => Err(HsmError::Module {
            path: module.to_owned(),
            reason: format!("its configuration {conf} names no directories.tokendir"),
        }),
    }
}

/// `directories.tokendir` from a softhsm2.conf text (`key = value` lines, `#` comments).
fn parse_token_dir(conf: &str) -> Option<PathBuf> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "directories.tokendir")
        .map(|(_, v)| PathBuf::from(v.trim()))
        .filter(|p| !p.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_dir_is_read_from_a_softhsm2_configuration() {
        let conf = "# comment\n directories.tokendir = /var/lib/x/tokens \n\
                    objectstore.backend = file\n";
        assert_eq!(
            parse_token_dir(conf),
            Some(PathBuf::from("/var/lib/x/tokens"))
        );
        assert_eq!(parse_token_dir("# directories.tokendir = /a\n"), None);
        assert_eq!(parse_token_dir("directories.tokendir =\n"), None);
    }

    #[test]
    fn another_module_gets_no_lock() {
        let lock = TokenLock::for_module(Path::new("/usr/lib/x/libnethsm.so"), &BTreeMap::new())
            .expect("no lock needed");
        assert!(lock.path().is_none());
        drop(lock.hold(Access::Write).expect("a no-op"));
    }

    #[test]
    fn a_writer_excludes_readers_and_other_writers_readers_share() {
        let dir = tempfile::tempdir().expect("tmp");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\n", dir.path().display()),
        )
        .expect("conf");
        let mut env = BTreeMap::new();
        env.insert("SOFTHSM2_CONF".to_owned(), conf.display().to_string());
        let module = Path::new(crate::pkcs11::SOFTHSM2_MODULE);
        let a = TokenLock::for_module(module, &env).expect("lock a");
        let b = TokenLock::for_module(module, &env).expect("lock b");
        let fb = b.file.as_ref().expect("a file");

        let r = a.hold(Access::Read).expect("read");
        assert!(fb.try_lock_shared().is_ok(), "readers share");
        fb.unlock().expect("unlock");
        assert!(fb.try_lock().is_err(), "a writer waits for a reader");
        drop(r);
        let w = a.hold(Access::Write).expect("write");
        assert!(fb.try_lock_shared().is_err(), "a reader waits for a writer");
        drop(w);
        assert!(fb.try_lock().is_ok(), "released on drop");
    }

    #[test]
    fn a_configuration_being_rewritten_is_never_read_half_written() {
        // Test threads of one process create tokens in one directory at once, and each
        // `SoftHsm2Token::create` may (re)write softhsm2.conf while another reads it.
        let dir = tempfile::tempdir().expect("tmp");
        let conf = dir.path().join("softhsm2.conf");
        let tokens = dir.path().join("tokens");
        crate::pkcs11::write_softhsm2_conf(&conf, &tokens).expect("first write");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (conf, tokens, stop) = (conf.clone(), tokens.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    crate::pkcs11::write_softhsm2_conf(&conf, &tokens).expect("rewrite");
                }
            })
        };
        for _ in 0..2000 {
            let text = std::fs::read_to_string(&conf).expect("read");
            assert_eq!(
                parse_token_dir(&text).as_deref(),
                Some(tokens.as_path()),
                "{text:?}"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().expect("writer");
        let leftovers = std::fs::read_dir(dir.path())
            .expect("list")
            .filter(|e| {
                e.as_ref()
                    .map(|e| e.file_name().to_string_lossy().contains(".tmp-"))
                    .unwrap_or(false)
            })
            .count();
        assert_eq!(leftovers, 0, "no temporary left behind");
    }

    #[test]
    fn a_planted_link_is_not_followed() {
        let dir = tempfile::tempdir().expect("tmp");
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, dir.path().join(LOCK_FILE_NAME)).expect("link");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\n", dir.path().display()),
        )
        .expect("conf");
        let mut env = BTreeMap::new();
        env.insert("SOFTHSM2_CONF".to_owned(), conf.display().to_string());
        let err = TokenLock::for_module(Path::new(crate::pkcs11::SOFTHSM2_MODULE), &env)
            .expect_err("a link is refused");
        assert!(err.to_string().contains(LOCK_FILE_NAME), "{err}");
        assert!(!target.exists(), "nothing created through the link");
    }
}
