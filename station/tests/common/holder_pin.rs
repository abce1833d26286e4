//! `idstation` as the tests run it: secrets on standard input, one per line, never in the
//! environment. For `issue`, the holder's PIN goes in on a file descriptor (`--pin-fd 0`, the
//! line after the operator's password, as a holder-facing PIN pad would hand it over), and
//! the PIN letter is written to a fresh file in the test's directory. Included with `#[path = "common/holder_pin.rs"] mod holder_pin;`.
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

/// Run `c` with `lines` written to its standard input, one per line: the way the station
/// takes secrets without a terminal (docs/station.md: the operator's password first, then the
/// command's other secrets, then the holder's PIN on `--pin-fd 0`).
pub fn with_stdin(mut c: Command, lines: &[&str]) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("run idstation");
    if let Some(mut stdin) = child.stdin.take() {
        // The child may exit before it reads (a refusal before a secret): ignore a broken pipe.
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let _ = stdin.write_all(text.as_bytes());
    }
    child.wait_with_output().expect("wait for idstation")
}

/// Run `c` (an `idstation` command line holding `args`) with `secrets` on standard input
/// (the operator's password, then e.g. a new password); for `issue` without its own
/// `--pin-fd`/`--pin-letter`, add `--pin-fd 0 --pin-letter <letters>/pin-letter-N.pdf` and
/// write the operator's password (`secrets[0]`) and then `pin`.
pub fn output(
    mut c: Command,
    args: &[&str],
    letters: &Path,
    secrets: &[&str],
    pin: &str,
) -> Output {
    if !is_issue(args) || args.contains(&"--pin-fd") {
        return with_stdin(c, secrets);
    }
    if !args.contains(&"--pin-letter") {
        c.arg("--pin-letter").arg(letter_path(letters));
    }
    c.args(["--pin-fd", "0"]);
    let first = secrets.first().copied().unwrap_or("");
    with_stdin(c, &[first, pin])
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
