//! Audit exports across CA rollovers (issue 19): one set of exports — before, during (request
//! filed, not yet approved) and after a rollover of each kind (root, e-Signature CA, Document
//! Signer, CSCA) — checked by both verifiers, `idstation audit verify` and the independent
//! `registry/tests/verify_export.py`, against every root certificate the station has written.
//! The two verifiers must agree on every export and root, and a wrong anchor fails both.

#[path = "common/holder_pin.rs"]
mod holder_pin;
#[path = "common/rotation.rs"]
mod rig;
#[path = "common/software_profiles.rs"]
mod software_profiles;

use std::path::{Path, PathBuf};
use std::process::Command;

use rig::{sh, text, Station};

fn python_verify(dir: &Path, root: &Path) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry/tests/verify_export.py");
    sh(Command::new("python3").arg(script).arg(dir).arg(root))
}

fn cli_verify(dir: &Path, root: &Path) -> std::process::Output {
    sh(Command::new(env!("CARGO_BIN_EXE_idstation"))
        .args(["audit", "verify"])
        .arg(dir)
        .arg("--root")
        .arg(root))
}

/// Every root certificate of the data dir (root-ca-1.pem, root-ca-2.pem, …).
fn roots(st: &Station) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(st.data.join("ca"))
        .expect("ca dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("root-ca-") && n.ends_with(".pem"))
        })
        .collect();
    v.sort();
    v
}

/// Export now as `label`, then both verifiers against every root (must pass) and against the
/// CSCA certificate (a self-signed CA that did not issue the audit chain: must fail).
fn export_and_verify(st: &Station, label: &str) {
    let out = st.dir.join(format!("export-{label}"));
    st.ok(
        "admin",
        &[
            "audit",
            "export",
            "--out",
            out.to_str().unwrap(),
            "--operator",
            "admin",
        ],
    );
    let roots = roots(st);
    assert!(!roots.is_empty());
    for root in &roots {
        let c = cli_verify(&out, root);
        let p = python_verify(&out, root);
        assert!(
            c.status.success() && p.status.success(),
            "{label}: export against {} — idstation:\n{}\nverify_export.py:\n{}",
            root.display(),
            text(&c),
            text(&p)
        );
    }
    // The data-dir default (root-ca-1.pem) as well.
    let c = sh(Command::new(env!("CARGO_BIN_EXE_idstation"))
        .arg("--data-dir")
        .arg(&st.data)
        .args(["audit", "verify"])
        .arg(&out));
    assert!(c.status.success(), "{label}: default root:\n{}", text(&c));
    let wrong = st.data.join("ca/csca-1.pem");
    let c = cli_verify(&out, &wrong);
    let p = python_verify(&out, &wrong);
    assert_eq!(
        c.status.code(),
        Some(2),
        "{label}: wrong root:\n{}",
        text(&c)
    );
    assert!(!p.status.success(), "{label}: wrong root:\n{}", text(&p));
}

fn rollover_case(ca: &str, times: usize) -> Station {
    let st = Station::new();
    export_and_verify(&st, "before");
    for n in 1..=times {
        let o = st.json(
            "admin",
            &["ca", "rotate", "--ca", ca, "--operator", "admin"],
        );
        let id = o["id"].as_i64().expect("request id").to_string();
        export_and_verify(&st, &format!("during-{n}"));
        st.ok("bob", &["ca", "approve", &id, "--operator", "bob"]);
        export_and_verify(&st, &format!("after-{n}"));
    }
    st
}

#[test]
fn exports_verify_against_old_and_new_root_before_during_and_after_root_rollovers() {
    // Two rollovers: root-ca-1 → 2 → 3; the chain carries both link certificates.
    let st = rollover_case("root", 2);
    let chain = std::fs::read_to_string(st.dir.join("export-after-2/chain.pem")).expect("chain");
    assert_eq!(
        chain.matches("BEGIN CERTIFICATE").count(),
        4,
        "audit certificate, link root-ca-1 by root-ca-2, link root-ca-2 by root-ca-3, root-ca-1:\n{chain}"
    );
}

#[test]
fn exports_verify_before_during_and_after_esign_rollover() {
    let _ = rollover_case("esign", 1);
}

#[test]
fn exports_verify_before_during_and_after_document_signer_and_csca_rollovers() {
    let _ = rollover_case("ds", 1);
    let _ = rollover_case("csca", 1);
}
