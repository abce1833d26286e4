//! Shared helpers for the CA's integration tests: the key store they run on, the external
//! oracles (openssl, pkilint), and test holders.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use hsm::pkcs11::{Pkcs11Store, SoftHsm2Token};
use zeroize::Zeroizing;

const SO_PIN: &str = "ca-test-so-4711";
const USER_PIN: &str = "ca-test-user-0815";

/// The process's private SoftHSM2 token directory: the directory of the `SOFTHSM2_CONF` that
/// cargo's runner (`scripts/cargo-runner.sh`) started the test process with. SoftHSM2 reads the
/// variable once, at `C_Initialize`, and the process never sets it itself.
fn softhsm_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        SoftHsm2Token::process_dir().expect(
            "SOFTHSM2_CONF does not name DIR/softhsm2.conf: run the tests through cargo \
             (scripts/cargo-runner.sh)",
        )
    })
    .clone()
}

/// A logged-in store on a newly initialised SoftHSM2 token (`/usr/lib/softhsm/libsofthsm2.so`)
/// in the process's private token directory: the real HSM path the station uses.
pub fn softhsm_store() -> Pkcs11Store {
    static N: AtomicUsize = AtomicUsize::new(0);
    let label = format!(
        "ca{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let token =
        SoftHsm2Token::create(&softhsm_dir(), &label, SO_PIN, USER_PIN).unwrap_or_else(|e| {
            panic!("SoftHSM2 token init failed (is Debian softhsm2 installed?): {e}")
        });
    token
        .open(Zeroizing::new(USER_PIN.to_owned()))
        .unwrap_or_else(|e| panic!("SoftHSM2 token open failed: {e}"))
}

/// The holder used across tests (PINFL is 14 digits, names in Latin script).
pub fn holder() -> ca::HolderSubject {
    ca::HolderSubject {
        pinfl: "31234567890123".into(),
        surname: "Karimova".into(),
        given_names: "Dilnoza".into(),
        common_name: "Dilnoza Karimova".into(),
        country: "UZ".into(),
    }
}

/// Run an external tool; panic loudly (naming the tool) if it is not installed.
pub fn run(tool: &str, args: &[&str], dir: &Path) -> (i32, String) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("oracle `{tool}` could not be started ({e}); it is required: install it (openssl: Debian `openssl`; pkilint: `pip install pkilint`)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Run a tool and require exit status 0, printing its output otherwise.
pub fn run_ok(tool: &str, args: &[&str], dir: &Path) -> String {
    let (code, text) = run(tool, args, dir);
    assert_eq!(
        code,
        0,
        "`{tool} {}` failed (exit {code}):\n{text}",
        args.join(" ")
    );
    text
}

/// pkilint: exit code = number of findings at or above the `-s` severity.
pub fn pkilint(tool: &str, extra: &[&str], file: &Path) {
    let mut args = vec!["lint"];
    args.extend_from_slice(extra);
    let f = file.to_str().expect("utf-8 temp path");
    args.extend_from_slice(&["-s", "WARNING", f]);
    let (code, text) = run(tool, &args, file.parent().expect("file in a dir"));
    assert_eq!(
        code,
        0,
        "`{tool} {}` reported {code} finding(s) at WARNING or above:\n{text}",
        args.join(" ")
    );
}

pub fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write temp file");
    p
}
