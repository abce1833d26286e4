//! Test rig for end-to-end tests through real pcscd and vsmartcard vpcd with `vchip` as the card
//! (ARCHITECTURE.md "Real parts"). A dev-dependency only.
//!
//! ```no_run
//! let slot = testrig::Slot::lease();                  // exclusive, across processes
//! let card = slot.insert(std::path::Path::new("card.img"), &[]); // vchip on the slot's port
//! // ... talk to `slot.reader_name` with the pcsc crate, opensc-tool -r, yubico-piv-tool -r ...
//! card.pull();                                        // vchip killed, pcscd sees the card gone
//! ```
//!
//! * [`ensure_pcscd`] installs the extra vpcd readers (scripts/idstation-vpcd.conf into
//!   /etc/reader.conf.d, driver copies into /usr/local/lib/idstation-pcsc) and starts
//!   `pcscd --foreground` if none runs. It fails loudly; it never skips.
//! * [`Slot::lease`] takes an exclusive `flock` on /tmp/idstation-vpcd-<port>.lock for one of
//!   the vpcd slots pcscd offers (6 when our reader.conf is installed), so tests in several
//!   crates, processes and threads can run at once. The lease ends when the `Slot` drops.
//! * [`Slot::insert`] spawns `vchip insert IMAGE --port P --exit-with-stdin EXTRA…` and waits
//!   until pcscd reports the card present; [`InsertedCard::pull`] (or drop) kills it and waits
//!   until pcscd reports it absent. The vchip binary is `$VCHIP_BIN`, else `vchip` next to the
//!   test executable (target/<profile>/vchip: build it with `cargo build -p chip --bin vchip`).

pub mod centre;
#[cfg(feature = "egov")]
pub mod egov;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Errors of the rig. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RigError {
    /// pcscd could not be started or does not answer.
    #[error("pcscd: {0}")]
    Pcscd(String),
    /// The vpcd driver or our reader configuration could not be installed.
    #[error("vpcd setup: {0}")]
    Setup(String),
    /// No slot could be leased.
    #[error("slot lease: {0}")]
    Lease(String),
    /// vchip could not be found or started, or the card did not appear / disappear.
    #[error("vchip: {0}")]
    Vchip(String),
    /// A PC/SC call failed.
    #[error("pcsc: {0}")]
    Pcsc(#[from] pcsc::Error),
}

/// The vpcd slots the rig knows: port and the reader name pcscd gives it.
pub const SLOTS: [(u16, &str); 6] = [
    (35963, "Virtual PCD 00 00"),
    (35964, "Virtual PCD 00 01"),
    (35965, "Virtual PCD B 00 00"),
    (35966, "Virtual PCD B 00 01"),
    (35967, "Virtual PCD C 00 00"),
    (35968, "Virtual PCD C 00 01"),
];

/// Our reader.conf (also used by scripts/pcsc-up.sh).
pub const READER_CONF: &str = include_str!("../../scripts/idstation-vpcd.conf");
/// Where the reader.conf is installed.
pub const READER_CONF_PATH: &str = "/etc/reader.conf.d/idstation-vpcd";
/// Debian's vpcd driver.
pub const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
/// Directory of the per-reader driver copies.
pub const DRIVER_COPY_DIR: &str = "/usr/local/lib/idstation-pcsc";
/// Driver copies named in [`READER_CONF`].
pub const DRIVER_COPIES: [&str; 2] = ["libifdvpcd-b.so", "libifdvpcd-c.so"];
/// Log of a pcscd started by the rig.
pub const PCSCD_LOG: &str = "/tmp/idstation-pcscd.log";
/// Pid file of a pcscd started by the rig.
pub const PCSCD_PIDFILE: &str = "/tmp/idstation-pcscd.pid";
const SETUP_LOCK: &str = "/tmp/idstation-pcscd.lock";

const LEASE_TIMEOUT: Duration = Duration::from_secs(600);
/// Set-up (install + start pcscd) takes seconds; longer means a process holds the lock by mistake.
const SETUP_LOCK_TIMEOUT: Duration = Duration::from_secs(60);
const CARD_TIMEOUT: Duration = Duration::from_secs(15);
const INSERT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(4);
/// Pause after pcscd reported a card absent, so the next insertion falls into a later poll. It is
/// taken before the next insertion into the slot (or before the lease ends), not at removal, so
/// whatever a test does between a removal and the next insertion overlaps with it.
const REMOVAL_SETTLE: Duration = Duration::from_millis(500);
/// How long a card found in a slot before an insertion may take to go before it counts as a
/// stray (pcscd polls vpcd slots every 400 ms).
const STRAY_CARD_WAIT: Duration = Duration::from_secs(5);

fn lock_path(port: u16) -> PathBuf {
    PathBuf::from(format!("/tmp/idstation-vpcd-{port}.lock"))
}

fn open_lock(path: &Path) -> Result<File, RigError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| RigError::Lease(format!("{}: {e}", path.display())))
}

/// flock(2) on the file; `block = false` returns Ok(false) when another holder has it.
fn flock(file: &File, block: bool) -> Result<bool, std::io::Error> {
    let op = libc::LOCK_EX | if block { 0 } else { libc::LOCK_NB };
    loop {
        // SAFETY: flock on a valid open file descriptor owned by `file`.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !block => return Ok(false),
            _ => return Err(err),
        }
    }
}

/// Install the reader.conf and the driver copies if they are missing or differ. Idempotent.
pub fn install_reader_conf() -> Result<(), RigError> {
    let driver = fs::read(VPCD_DRIVER).map_err(|e| {
        RigError::Setup(format!(
            "{VPCD_DRIVER}: {e} (install the Debian package vsmartcard-vpcd)"
        ))
    })?;
    fs::create_dir_all(DRIVER_COPY_DIR)
        .map_err(|e| RigError::Setup(format!("{DRIVER_COPY_DIR}: {e} (run as root)")))?;
    for name in DRIVER_COPIES {
        let path = Path::new(DRIVER_COPY_DIR).join(name);
        if fs::read(&path).ok().as_deref() != Some(&driver[..]) {
            write_replace(&path, &driver)?;
        }
    }
    if fs::read_to_string(READER_CONF_PATH).ok().as_deref() != Some(READER_CONF) {
        fs::create_dir_all("/etc/reader.conf.d")
            .map_err(|e| RigError::Setup(format!("/etc/reader.conf.d: {e} (run as root)")))?;
        write_replace(Path::new(READER_CONF_PATH), READER_CONF.as_bytes())?;
    }
    Ok(())
}

fn write_replace(path: &Path, bytes: &[u8]) -> Result<(), RigError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let err = |e: std::io::Error| RigError::Setup(format!("{}: {e} (run as root)", path.display()));
    {
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    fs::rename(&tmp, path).map_err(err)
}

/// Reader names pcscd currently offers, or None when pcscd does not run.
fn pcscd_readers() -> Option<Vec<String>> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).ok()?;
    match ctx.list_readers_owned() {
        Ok(names) => Some(
            names
                .into_iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect(),
        ),
        Err(pcsc::Error::NoReadersAvailable) => Some(Vec::new()),
        Err(_) => None,
    }
}

fn rig_pcscd_pid() -> Option<i32> {
    let pid: i32 = fs::read_to_string(PCSCD_PIDFILE)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "pcscd").then_some(pid)
}

fn start_pcscd() -> Result<(), RigError> {
    fs::create_dir_all("/run/pcscd")
        .map_err(|e| RigError::Pcscd(format!("/run/pcscd: {e} (run as root)")))?;
    // Appended to, not replaced: when a test finds pcscd gone, the log of the one that ended
    // is what tells why.
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(PCSCD_LOG)
        .map_err(|e| RigError::Pcscd(format!("{PCSCD_LOG}: {e}")))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    writeln!(
        log,
        "== testrig starts pcscd (unix time {now}, test process {})",
        std::process::id()
    )
    .map_err(|e| RigError::Pcscd(format!("{PCSCD_LOG}: {e}")))?;
    let log2 = log
        .try_clone()
        .map_err(|e| RigError::Pcscd(format!("{PCSCD_LOG}: {e}")))?;
    let child = Command::new("pcscd")
        .arg("--foreground")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| {
            RigError::Pcscd(format!(
                "cannot start pcscd: {e} (install the Debian package pcscd)"
            ))
        })?;
    fs::write(PCSCD_PIDFILE, child.id().to_string())
        .map_err(|e| RigError::Pcscd(format!("{PCSCD_PIDFILE}: {e}")))?;
    // The child is left running on purpose (shared by later tests); it is not waited for.
    std::mem::forget(child);
    Ok(())
}

fn wait_for_readers(want_all: bool) -> Result<Vec<String>, RigError> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(readers) = pcscd_readers() {
            let ours = SLOTS
                .iter()
                .filter(|(_, n)| readers.iter().any(|r| r == n))
                .count();
            if (want_all && ours == SLOTS.len()) || (!want_all && ours > 0) {
                return Ok(readers);
            }
        }
        if Instant::now() > deadline {
            return Err(RigError::Pcscd(format!(
                "pcscd does not offer the vpcd readers {:?} after 15 s (see {PCSCD_LOG})",
                SLOTS.iter().map(|s| s.1).collect::<Vec<_>>()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Make sure pcscd runs with the vpcd readers: install our reader.conf and driver copies, start
/// `pcscd --foreground` if none runs (pid in /tmp/idstation-pcscd.pid, log in
/// /tmp/idstation-pcscd.log). A pcscd the rig started itself that lacks our readers is
/// restarted, but only when no slot is leased. Fails loudly when pcscd or vpcd cannot be used.
pub fn ensure_pcscd() -> Result<(), RigError> {
    let setup = open_lock(Path::new(SETUP_LOCK))?;
    let start = Instant::now();
    while !flock(&setup, false).map_err(|e| RigError::Pcscd(format!("{SETUP_LOCK}: {e}")))? {
        if start.elapsed() > SETUP_LOCK_TIMEOUT {
            return Err(RigError::Pcscd(format!(
                "{SETUP_LOCK} stayed locked for {} s; a process holds it open \
                 (find it with `fuser -v {SETUP_LOCK}`; a pcscd that inherited it must be restarted)",
                SETUP_LOCK_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let installed = install_reader_conf();
    match pcscd_readers() {
        None => {
            installed?;
            start_pcscd()?;
            wait_for_readers(true)?;
        }
        Some(readers) => {
            let missing = SLOTS.iter().any(|(_, n)| !readers.iter().any(|r| r == n));
            if missing && installed.is_ok() {
                if let Some(pid) = rig_pcscd_pid() {
                    if let Some(locks) = all_slots_idle()? {
                        // SAFETY: kill(2) of the pcscd whose pid the rig recorded when it
                        // started it (checked against /proc/<pid>/comm).
                        unsafe { libc::kill(pid, libc::SIGTERM) };
                        let t = Instant::now();
                        while pcscd_readers().is_some() && t.elapsed() < Duration::from_secs(10) {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        start_pcscd()?;
                        wait_for_readers(true)?;
                        drop(locks);
                        return Ok(());
                    }
                }
            }
            if !SLOTS.iter().any(|(_, n)| readers.iter().any(|r| r == n)) {
                return Err(RigError::Pcscd(format!(
                    "a pcscd runs but offers no vpcd reader (readers: {readers:?}); \
                     install vsmartcard-vpcd and restart pcscd (scripts/pcsc-up.sh)"
                )));
            }
        }
    }
    Ok(())
}

/// Try to take every slot lock without blocking; Some(locks) when all were free.
fn all_slots_idle() -> Result<Option<Vec<File>>, RigError> {
    let mut held = Vec::new();
    for (port, _) in SLOTS {
        let f = open_lock(&lock_path(port))?;
        if !flock(&f, false).map_err(|e| RigError::Lease(e.to_string()))? {
            return Ok(None);
        }
        held.push(f);
    }
    Ok(Some(held))
}

/// An exclusive lease of one vpcd slot. Dropping it releases the lease.
#[derive(Debug)]
pub struct Slot {
    /// vpcd TCP port the card connects to.
    pub port: u16,
    /// PC/SC reader name of the slot.
    pub reader_name: String,
    /// When pcscd last reported the slot's card absent; the next insertion waits until
    /// [`REMOVAL_SETTLE`] has passed since then.
    removed_at: Mutex<Option<Instant>>,
    _lock: File,
}

impl Slot {
    /// Lease a free slot, waiting while all are in use. Starts pcscd if needed. Panics with
    /// the reason when pcscd/vpcd cannot be used: a test depending on the rig must not pass
    /// without it.
    pub fn lease() -> Slot {
        match Slot::try_lease() {
            Ok(s) => s,
            Err(e) => panic!("testrig: {e}"),
        }
    }

    /// Like [`Slot::lease`], returning the error.
    pub fn try_lease() -> Result<Slot, RigError> {
        ensure_pcscd()?;
        let readers =
            pcscd_readers().ok_or_else(|| RigError::Pcscd("pcscd stopped answering".into()))?;
        let offered: Vec<(u16, &str)> = SLOTS
            .iter()
            .copied()
            .filter(|(_, n)| readers.iter().any(|r| r == n))
            .collect();
        let start = Instant::now();
        loop {
            for (port, name) in &offered {
                let f = open_lock(&lock_path(*port))?;
                if flock(&f, false).map_err(|e| RigError::Lease(e.to_string()))? {
                    return Ok(Slot {
                        port: *port,
                        reader_name: name.to_string(),
                        removed_at: Mutex::new(None),
                        _lock: f,
                    });
                }
            }
            if start.elapsed() > LEASE_TIMEOUT {
                return Err(RigError::Lease(format!(
                    "all {} vpcd slots stayed leased for {} s",
                    offered.len(),
                    LEASE_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Insert a card: spawn `vchip insert IMAGE --port P --exit-with-stdin EXTRA…` and wait until
    /// pcscd reports a card in the slot. Panics with the reason on failure.
    pub fn insert(&self, image: &Path, extra_args: &[&str]) -> InsertedCard<'_> {
        match self.try_insert(image, extra_args) {
            Ok(c) => c,
            Err(e) => panic!("testrig: {e}"),
        }
    }

    /// Like [`Slot::insert`], returning the error.
    pub fn try_insert(
        &self,
        image: &Path,
        extra_args: &[&str],
    ) -> Result<InsertedCard<'_>, RigError> {
        let bin = vchip_bin()?;
        self.settle();
        // pcscd may still report the previous lessee's card for a poll or two after it said
        // the slot was empty; a stray vchip on the port stays.
        if card_present(&self.reader_name)? && self.wait_empty(STRAY_CARD_WAIT).is_err() {
            return Err(RigError::Vchip(format!(
                "{} already holds a card before insertion, for {} s (a stray vchip on port {}?)",
                self.reader_name,
                STRAY_CARD_WAIT.as_secs(),
                self.port
            )));
        }
        // pcscd polls vpcd slots every 400 ms; a card that connects again within a poll
        // interval of being removed is sometimes never reported present (seen after tears).
        // Like a user, the rig then pulls and re-inserts it.
        let mut last_err = None;
        for attempt in 0..4 {
            if attempt > 0 {
                std::thread::sleep(REMOVAL_SETTLE * 2);
            }
            let child = Command::new(&bin)
                .arg("insert")
                .arg(image)
                .arg("--port")
                .arg(self.port.to_string())
                .arg("--exit-with-stdin")
                .args(extra_args)
                .stdin(Stdio::piped())
                .spawn()
                .map_err(|e| RigError::Vchip(format!("cannot start {}: {e}", bin.display())))?;
            let mut card = InsertedCard {
                slot: self,
                child: Some(child),
            };
            match card.wait_state_for(true, INSERT_ATTEMPT_TIMEOUT) {
                Ok(()) => return Ok(card),
                Err(e) => {
                    if let Some(mut child) = card.child.take() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    let _ = card.wait_state_for(false, CARD_TIMEOUT);
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| RigError::Vchip("insertion failed".into())))
    }

    /// Wait until pcscd reports the slot empty: after a card that something other than the rig
    /// inserted (a script's `vchip insert … &`) has been removed, so that the next lessee never
    /// finds it still there. The removal is noted, so the next insertion settles first.
    pub fn wait_empty(&self, timeout: Duration) -> Result<(), RigError> {
        let start = Instant::now();
        while card_present(&self.reader_name)? {
            if start.elapsed() > timeout {
                return Err(RigError::Vchip(format!(
                    "a card stayed in {} for {} s after its vchip was stopped",
                    self.reader_name,
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.note_removed();
        Ok(())
    }

    /// Note that pcscd has just reported the slot's card absent.
    fn note_removed(&self) {
        *self.removed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Sleep until [`REMOVAL_SETTLE`] has passed since the last removal, if it has not yet.
    fn settle(&self) {
        let removed_at = *self.removed_at.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = removed_at {
            if let Some(left) = REMOVAL_SETTLE.checked_sub(t.elapsed()) {
                std::thread::sleep(left);
            }
        }
    }
}

impl Drop for Slot {
    /// The next lessee of the slot (another thread or process) inserts only after the settle.
    fn drop(&mut self) {
        self.settle();
    }
}

/// Whether pcscd reports a card in `reader`.
pub fn card_present(reader: &str) -> Result<bool, RigError> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User)?;
    let name = std::ffi::CString::new(reader)
        .map_err(|_| RigError::Lease(format!("reader name {reader:?} contains NUL")))?;
    let mut states = [pcsc::ReaderState::new(name, pcsc::State::UNAWARE)];
    ctx.get_status_change(Duration::from_millis(0), &mut states)?;
    Ok(states[0].event_state().contains(pcsc::State::PRESENT))
}

/// The vchip binary: `$VCHIP_BIN`, else `vchip` in the directory above the test executable's
/// `deps/` or `examples/` directory (target/<profile>/vchip), else next to the executable.
pub fn vchip_bin() -> Result<PathBuf, RigError> {
    let set = std::env::var_os("VCHIP_BIN");
    workspace_bin(
        "vchip",
        ("VCHIP_BIN", set),
        "cargo build -p chip --bin vchip",
    )
    .map_err(RigError::Vchip)
}

/// The station's `idstation` binary, found as [`vchip_bin`] finds vchip (`$IDSTATION_BIN`):
/// a test of another crate that needs a second station in its own process (`cargo test
/// --workspace` builds it, as the station's own tests need it).
pub fn idstation_bin() -> Result<PathBuf, String> {
    let set = std::env::var_os("IDSTATION_BIN");
    workspace_bin(
        "idstation",
        ("IDSTATION_BIN", set),
        "cargo build -p station --bin idstation",
    )
}

/// Binary `name` of this workspace: the path in variable `var` (its name and value) when set,
/// else in the directory above the test executable's `deps/` or `examples/` directory
/// (target/<profile>/name), else next to the executable.
fn workspace_bin(
    name: &str,
    (var, set): (&str, Option<std::ffi::OsString>),
    build: &str,
) -> Result<PathBuf, String> {
    if let Some(p) = set {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{var}={} is not a file", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        if dir
            .file_name()
            .is_some_and(|n| n == "deps" || n == "examples")
        {
            if let Some(profile) = dir.parent() {
                candidates.push(profile.join(name));
            }
        }
        candidates.push(dir.join(name));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        format!(
            "{name} not found next to {} (run `{build}` with the same CARGO_TARGET_DIR and \
             profile, or set {var})",
            exe.display()
        )
    })
}

/// A card in a leased slot (a running `vchip insert`). Pull it with [`InsertedCard::pull`] or
/// by dropping it.
#[derive(Debug)]
pub struct InsertedCard<'a> {
    slot: &'a Slot,
    child: Option<Child>,
}

impl InsertedCard<'_> {
    /// The reader the card sits in.
    pub fn reader_name(&self) -> &str {
        &self.slot.reader_name
    }

    fn wait_state(&mut self, present: bool) -> Result<(), RigError> {
        self.wait_state_for(present, CARD_TIMEOUT)
    }

    fn wait_state_for(&mut self, present: bool, timeout: Duration) -> Result<(), RigError> {
        let start = Instant::now();
        loop {
            if card_present(&self.slot.reader_name)? == present {
                if !present {
                    self.slot.note_removed();
                }
                return Ok(());
            }
            if present {
                if let Some(child) = self.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(RigError::Vchip(format!(
                            "vchip exited ({status}) before the card appeared in {}",
                            self.slot.reader_name
                        )));
                    }
                }
            }
            if start.elapsed() > timeout {
                return Err(RigError::Vchip(format!(
                    "card did not {} in {} within {} s",
                    if present { "appear" } else { "disappear" },
                    self.slot.reader_name,
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Remove the card: kill vchip and wait until pcscd sees the slot empty.
    pub fn pull(mut self) {
        if let Err(e) = self.pull_inner() {
            panic!("testrig: {e}");
        }
    }

    fn pull_inner(&mut self) -> Result<(), RigError> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.wait_state(false)
    }

    /// Wait until vchip ends by itself (e.g. after `--tear-after N`) and pcscd sees the slot
    /// empty; returns vchip's exit status.
    pub fn wait_removed(mut self, timeout: Duration) -> Result<ExitStatus, RigError> {
        let start = Instant::now();
        let mut child = self
            .child
            .take()
            .ok_or_else(|| RigError::Vchip("card already pulled".into()))?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => return Err(RigError::Vchip(format!("wait: {e}"))),
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RigError::Vchip(format!(
                    "vchip did not end by itself within {} s",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.wait_state(false)?;
        Ok(status)
    }

    /// Whether vchip is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for InsertedCard<'_> {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Err(e) = self.pull_inner() {
                if !std::thread::panicking() {
                    panic!("testrig: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_table_matches_the_shipped_reader_conf() {
        for port in [35965u16, 35967] {
            assert!(READER_CONF.contains(&format!("/dev/null:{port}")));
        }
        for lib in DRIVER_COPIES {
            assert!(READER_CONF.contains(lib));
        }
        assert_eq!(SLOTS.len(), 6);
    }

    /// A pcscd that inherited the set-up lock (scripts/pcsc-up.sh once leaked its fd 9 into
    /// pcscd) makes every later `ensure_pcscd` wait for as long as pcscd runs.
    #[test]
    fn running_pcscd_does_not_hold_the_setup_lock() {
        ensure_pcscd().expect("pcscd with the vpcd readers");
        let mut pcscds = 0;
        for entry in fs::read_dir("/proc").expect("/proc").flatten() {
            let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if comm.trim() != "pcscd" {
                continue;
            }
            pcscds += 1;
            for fd in fs::read_dir(entry.path().join("fd"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let target = fs::read_link(fd.path()).unwrap_or_default();
                assert_ne!(
                    target,
                    Path::new(SETUP_LOCK),
                    "pcscd {:?} holds {SETUP_LOCK} open",
                    entry.file_name()
                );
            }
        }
        assert!(pcscds > 0, "no pcscd process found after ensure_pcscd");
    }

    #[test]
    fn two_leases_in_one_process_get_distinct_slots() {
        let a = Slot::lease();
        let b = Slot::lease();
        assert_ne!(a.port, b.port);
        assert_ne!(a.reader_name, b.reader_name);
        drop(a);
        let c = Slot::lease();
        assert_ne!(c.port, b.port);
    }
}
