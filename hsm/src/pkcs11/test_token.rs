//! Test fixtures for the PKCS#11 backend: one private SoftHSM2 token directory per test process
//! (SoftHSM2 reads `SOFTHSM2_CONF` once, at `C_Initialize`; cargo's runner sets it) and a fresh
//! token per test. Other modules' tests that need a real key store take one from here.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use zeroize::Zeroizing;

use super::{Pkcs11Store, SoftHsm2Token};

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
