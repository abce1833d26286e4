//! Shared helpers for the CA's integration tests: the key store they run on, the external
//! oracles (openssl, pkilint), and test holders.
#![allow(dead_code)]

pub mod memstore;

use std::path::Path;
use std::process::Command;

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
    assert_eq!(code, 0, "`{tool} {}` failed (exit {code}):\n{text}", args.join(" "));
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
