//! `idstation issue` as the tests run it: the holder's PIN goes in on a file descriptor
//! (`--pin-fd 0`, the child's standard input, as a holder-facing PIN pad would hand it over),
//! never in the environment, and the PIN letter is written to a fresh file in the test's
//! directory. Included with `#[path = "common/holder_pin.rs"] mod holder_pin;`.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether `args` (after `--data-dir DIR`) run the `issue` command (not `ca issue`).
pub fn is_issue(args: &[&str]) -> bool {
    args.iter().find(|a| !a.starts_with("--")) == Some(&"issue")
}

/// A new PIN letter path under `dir` (the file does not exist yet).
pub fn letter_path(dir: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    dir.join(format!(
        "pin-letter-{}-{}.pdf",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Run `c` (an `idstation` command line holding `args`); for `issue` without its own
/// `--pin-fd`/`--pin-letter`, add `--pin-fd 0 --pin-letter <letters>/pin-letter-N.pdf` and
/// write `pin` to the child's standard input.
pub fn output(mut c: Command, args: &[&str], letters: &Path, pin: &str) -> Output {
    if !is_issue(args) || args.contains(&"--pin-fd") {
        return c.output().expect("run idstation");
    }
    if !args.contains(&"--pin-letter") {
        c.arg("--pin-letter").arg(letter_path(letters));
    }
    c.args(["--pin-fd", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("run idstation");
    if let Some(mut stdin) = child.stdin.take() {
        // The child may exit before it reads (a refusal before the PIN): ignore a broken pipe.
        let _ = stdin.write_all(format!("{pin}\n").as_bytes());
    }
    child.wait_with_output().expect("wait for idstation")
}

/// The PUK printed in a PIN letter, read back with poppler's `pdftotext` (an independent PDF
/// reader).
pub fn puk_in_letter(letter: &Path) -> String {
    let o = Command::new("pdftotext")
        .arg(letter)
        .arg("-")
        .output()
        .expect("run pdftotext (Debian poppler-utils)");
    assert!(o.status.success(), "pdftotext {}: {o:?}", letter.display());
    let text = String::from_utf8_lossy(&o.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("PUK: "))
        .unwrap_or_else(|| panic!("no PUK line in the letter:\n{text}"))
        .trim()
        .to_owned()
}
