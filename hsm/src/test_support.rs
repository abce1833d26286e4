//! Test fixtures: one private SoftHSM2 token directory per test process (SoftHSM2 reads
//! `SOFTHSM2_CONF` once, at `C_Initialize`; cargo's runner sets it), a fresh token per test, and
//! a process-wide TRACE-level log capture.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use zeroize::Zeroizing;

use crate::pkcs11::{Pkcs11Store, SoftHsm2Token};

pub const SO_PIN: &str = "so-pin-0f1e2d";
pub const USER_PIN: &str = "user-pin-3c4b5a";

/// The per-process token directory: the directory of the `SOFTHSM2_CONF` the process was
/// started with. Cargo starts every test process through `scripts/cargo-runner.sh`
/// (`.cargo/config.toml`), which makes a private directory for it and removes it afterwards;
/// the process never sets the variable itself ([`crate::process_env`]).
pub fn softhsm_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = SoftHsm2Token::process_dir().expect(
            "SOFTHSM2_CONF does not name DIR/softhsm2.conf: run tests through cargo, whose runner \
             (scripts/cargo-runner.sh) gives every test process a private SoftHSM2 configuration",
        );
        std::fs::create_dir_all(&dir).expect("test token dir");
        dir
    })
    .clone()
}

/// A newly initialised token with a unique label, with `user_pin` as its user PIN.
pub fn fresh_token_with_pin(user_pin: &str) -> SoftHsm2Token {
    static N: AtomicUsize = AtomicUsize::new(0);
    let label = format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    SoftHsm2Token::create(&softhsm_dir(), &label, SO_PIN, user_pin).expect("init token")
}

/// A logged-in store on a newly initialised token.
pub fn fresh_store() -> Pkcs11Store {
    fresh_token_with_pin(USER_PIN)
        .open(Zeroizing::new(USER_PIN.to_owned()))
        .expect("open token")
}

#[derive(Clone)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Install (once) a global TRACE-level subscriber writing into a buffer, also bridging the
/// `log` records of dependencies (cryptoki logs through `log`); return the buffer.
pub fn capture_logs() -> Captured {
    static CAP: OnceLock<Captured> = OnceLock::new();
    CAP.get_or_init(|| {
        use tracing_subscriber::util::SubscriberInitExt;
        let cap = Captured(Arc::new(Mutex::new(Vec::new())));
        let writer = cap.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
            .try_init()
            .expect("first global subscriber");
        cap
    })
    .clone()
}
