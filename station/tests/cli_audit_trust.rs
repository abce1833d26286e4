//! Issue 13, items 1–3, attacked end to end: who may sign an export (the audit-signing mark,
//! CRLs), continuity against a rewritten or truncated history (`--previous`), checkpoints after
//! every CA-admin change published to the outbox, and refusals of unknown callers with a
//! bounded name. Real SoftHSM2 token and SQLite registry; the independent Python verifier
//! (`registry/tests/verify_export.py`) must agree with `idstation audit verify`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HSM_PIN: &str = "hsm-pin-71c0a3e9d2";
const ADMIN_PASSWORD: &str = "admin-password-2b7c1e";
const CLERK_PASSWORD: &str = "clerk-password-60a9f4";
const AUDITOR_PASSWORD: &str = "auditor-password-e3d5b8";
const SECRETS: [&str; 4] = [HSM_PIN, ADMIN_PASSWORD, CLERK_PASSWORD, AUDITOR_PASSWORD];

#[path = "common/holder_pin.rs"]
mod holder_pin;
#[path = "common/software_profiles.rs"]
mod software_profiles;

fn idstation_new(data: &Path, args: &[&str], password: &str, new_password: &str) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
    c.arg("--data-dir").arg(data).args(args);
    let o = holder_pin::with_stdin(c, &[password, new_password]);
    let all = text(&o);
    for s in SECRETS {
        assert!(!all.contains(s), "a secret appeared in the output:\n{all}");
    }
    o
}

fn idstation(data: &Path, args: &[&str], password: &str) -> Output {
    idstation_new(data, args, password, "unused-new-password")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "idstation failed:\n{}", text(&o));
    o
}

/// `o` exited with `code` and its stderr says `what`.
fn refused(o: &Output, code: i32, what: &str) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(what),
        "expected {what:?}:\n{}",
        text(o)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn sh(cmd: &mut Command) -> Output {
    let o = cmd.output().expect("run tool");
    assert!(o.status.success(), "{}", text(&o));
    o
}

/// A data dir with ca-admin `admin`, clerk `clerk1`, auditor `aud1`, and a holder-auth
/// certificate (the slot 9A profile's content, through the test profile
/// `software-holder-auth`, since `ca issue` refuses the card-only `holder-auth`) issued for a
/// software key whose private half is in `tmp/holder.key`: the key an attacker holds.
fn station(tmp: &Path) -> PathBuf {
    let data = tmp.join("data");
    ok(idstation(
        &data,
        &["init", "--admin", "admin", "--station", "trust-test"],
        ADMIN_PASSWORD,
    ));
    software_profiles::install(&data);
    for (name, role, pw) in [
        ("clerk1", "clerk", CLERK_PASSWORD),
        ("aud1", "auditor", AUDITOR_PASSWORD),
    ] {
        ok(idstation_new(
            &data,
            &[
                "operator",
                "add",
                "--name",
                name,
                "--role",
                role,
                "--operator",
                "admin",
            ],
            ADMIN_PASSWORD,
            pw,
        ));
    }
    let key = tmp.join("holder.key");
    let spki = tmp.join("holder.spki.pem");
    sh(Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&key));
    sh(Command::new("openssl")
        .args(["ec", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&spki));
    let subject = tmp.join("subject.json");
    std::fs::write(
        &subject,
        r#"{"pinfl":"41505852610128","surname":"Toʻxtayeva","given_names":"Gʻulnora"}"#,
    )
    .expect("write subject");
    ok(idstation(
        &data,
        &[
            "ca",
            "issue",
            "--spki",
            s(&spki),
            "--subject",
            s(&subject),
            "--profile",
            "software-holder-auth",
            "--out",
            s(&tmp.join("holder-auth.pem")),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));
    data
}

fn export(data: &Path, out: &Path) -> serde_json::Value {
    let o = ok(idstation(
        data,
        &[
            "--json",
            "audit",
            "export",
            "--out",
            s(out),
            "--operator",
            "aud1",
        ],
        AUDITOR_PASSWORD,
    ));
    serde_json::from_slice(&o.stdout).expect("json")
}

fn root(data: &Path) -> PathBuf {
    data.join("ca/root-ca-1.pem")
}

/// `idstation audit verify DIR --root ROOT EXTRA…` without a data dir.
fn verify(dir: &Path, root: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idstation"))
        .env_remove("IDSTATION_HSM_PIN")
        .env_remove("IDSTATION_PASSWORD")
        .args(["audit", "verify"])
        .arg(dir)
        .arg("--root")
        .arg(root)
        .args(extra)
        .output()
        .expect("run idstation")
}

fn python_verify(dir: &Path, root: &Path, extra: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry/tests/verify_export.py");
    Command::new("python3")
        .arg(script)
        .arg(dir)
        .arg(root)
        .args(extra)
        .output()
        .expect("python3")
}

fn python_fails(o: &Output, what: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", text(o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(what),
        "expected {what:?}:\n{}",
        text(o)
    );
}

fn verify_log(data: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["audit", "verify-log", "--operator", "aud1"];
    args.extend_from_slice(extra);
    idstation(data, &args, AUDITOR_PASSWORD)
}

fn sqlite(data: &Path, sql: &str) {
    sh(Command::new("sqlite3")
        .arg(data.join("registry.sqlite"))
        .arg(sql));
}

#[test]
fn an_export_re_signed_by_a_holder_certificate_key_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = station(tmp.path());
    let genuine = tmp.path().join("genuine");
    export(&data, &genuine);
    ok(verify(&genuine, &root(&data), &[]));

    // The attacker keeps the events, drops the checkpoints they cannot sign, sets any
    // exported_at and signs the manifest with the holder's 9A key; chain.pem is the holder
    // certificate, the e-Signature CA and the root: a valid path to the root.
    let forged = tmp.path().join("forged");
    std::fs::create_dir(&forged).expect("mkdir");
    std::fs::copy(genuine.join("events.jsonl"), forged.join("events.jsonl")).expect("copy");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(genuine.join("manifest.json")).expect("manifest"))
            .expect("json");
    m["checkpoints"] = serde_json::json!([]);
    std::fs::write(
        forged.join("manifest.json"),
        serde_json::to_vec(&m).expect("json"),
    )
    .expect("write");
    sh(Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(tmp.path().join("holder.key"))
        .arg("-out")
        .arg(forged.join("manifest.sig"))
        .arg(forged.join("manifest.json")));
    let mut chain = std::fs::read_to_string(tmp.path().join("holder-auth.pem")).expect("cert");
    chain += &std::fs::read_to_string(data.join("ca/esign-ca-1.pem")).expect("esign");
    chain += &std::fs::read_to_string(root(&data)).expect("root");
    std::fs::write(forged.join("chain.pem"), chain).expect("write chain");
    // The path itself is sound (openssl agrees); only the signer's kind is wrong.
    sh(Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(root(&data))
        .arg("-untrusted")
        .arg(forged.join("chain.pem"))
        .arg(tmp.path().join("holder-auth.pem")));

    let o = verify(&forged, &root(&data), &[]);
    refused(&o, 2, "is not a station audit certificate");
    refused(
        &o,
        2,
        "id-kp-idstationAuditSigning (1.3.6.1.4.1.32473.1.3.1)",
    );
    python_fails(
        &python_verify(&forged, &root(&data), &[]),
        "not a station audit certificate",
    );
}

#[test]
fn a_revoked_audit_certificate_is_refused_with_the_roots_crl() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = station(tmp.path());
    let ex = tmp.path().join("export");
    export(&data, &ex);
    // The root's CRL before any revocation: the export verifies with it.
    let crl1 = tmp.path().join("root-1.crl");
    ok(idstation(
        &data,
        &[
            "ca",
            "crl",
            "--key",
            "root-ca-1",
            "--out",
            s(&crl1),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));
    ok(verify(&ex, &root(&data), &["--crl", s(&crl1)]));
    let py = python_verify(&ex, &root(&data), &["--crl", s(&crl1)]);
    assert!(py.status.success(), "{}", text(&py));
    // The audit certificate is revoked (recorded as the CA would record it) and the root
    // publishes a CRL listing it: an export signed by that key no longer verifies with it.
    sqlite(
        &data,
        "UPDATE certificates SET status = 'revoked', revoked_at = '2026-01-01T00:00:00.000000Z', \
         revocation_reason = 'keyCompromise' WHERE purpose = 'audit';",
    );
    let crl2 = tmp.path().join("root-2.crl");
    ok(idstation(
        &data,
        &[
            "ca",
            "crl",
            "--key",
            "root-ca-1",
            "--out",
            s(&crl2),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));
    let o = verify(&ex, &root(&data), &["--crl", s(&crl2)]);
    refused(&o, 2, "is revoked on CRL");
    python_fails(
        &python_verify(&ex, &root(&data), &["--crl", s(&crl2)]),
        "revoked on CRL",
    );
    // verify-log takes the same rule.
    refused(
        &verify_log(&data, &["--crl", s(&crl2)]),
        2,
        "is revoked on CRL",
    );
    // A CRL of a CA outside the audit chain, or a forged one, is an input error.
    let esign_crl = tmp.path().join("esign.crl");
    ok(idstation(
        &data,
        &[
            "ca",
            "crl",
            "--key",
            "esign-ca-1",
            "--out",
            s(&esign_crl),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));
    refused(
        &verify(&ex, &root(&data), &["--crl", s(&esign_crl)]),
        2,
        "is not a certificate of the export's chain",
    );
}

/// Recompute every event hash from `from` on (what an insider with the database and the
/// format spec does after editing a row), with Python's sqlite3 module.
fn rehash_from(data: &Path, from: u64) {
    let script = r#"
import hashlib, sqlite3, struct, sys
def field(s):
    b = s.encode(); return struct.pack(">I", len(b)) + b
db = sqlite3.connect(sys.argv[1]); start = int(sys.argv[2])
prev = db.execute("SELECT hash FROM audit_events WHERE seq = ?", (start - 1,)).fetchone()[0]
rows = db.execute("SELECT seq, time, operator, role, station, action, object, details FROM audit_events WHERE seq >= ? ORDER BY seq", (start,)).fetchall()
for r in rows:
    m = field("idstation-audit-event-v1") + struct.pack(">Q", r[0])
    for x in r[1:]:
        m += field(x)
    h = hashlib.sha256(m + prev).digest()
    db.execute("UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, r[0]))
    prev = h
db.commit()
"#;
    sh(Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(data.join("registry.sqlite"))
        .arg(from.to_string()));
}

#[test]
fn an_insider_who_rewrites_history_and_re_checkpoints_is_caught_by_previous() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = station(tmp.path());
    let old = tmp.path().join("old");
    let old_head = export(&data, &old);
    let old_last = old_head["last_seq"].as_u64().expect("last_seq");

    // The insider drops the triggers, rewrites event 3, recomputes the chain, deletes the
    // checkpoints and lets a clerk's `audit checkpoint` sign the new head.
    sqlite(
        &data,
        "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_checkpoints_no_delete; \
         UPDATE audit_events SET operator = 'mallory' WHERE seq = 3; \
         DELETE FROM audit_checkpoints;",
    );
    rehash_from(&data, 3);
    ok(idstation(
        &data,
        &["audit", "checkpoint", "--operator", "clerk1"],
        CLERK_PASSWORD,
    ));
    ok(verify_log(&data, &[]));
    let new = tmp.path().join("new");
    export(&data, &new);
    // Alone, the rewritten history verifies: that is the attack.
    ok(verify(&new, &root(&data), &[]));
    // With the auditor's earlier export, it does not.
    let o = verify(&new, &root(&data), &["--previous", s(&old)]);
    refused(&o, 2, &format!("broken at sequence {old_last}"));
    refused(&o, 2, "history rewritten");
    python_fails(
        &python_verify(&new, &root(&data), &["--previous", s(&old)]),
        "history rewritten",
    );
    refused(
        &verify_log(&data, &["--previous", s(&old)]),
        2,
        &format!("broken at sequence {old_last}"),
    );
    // An honest continuation verifies with --previous.
    let honest = tmp.path().join("honest");
    let t2 = tempfile::tempdir().expect("tempdir");
    let data2 = station(t2.path());
    let first = t2.path().join("first");
    export(&data2, &first);
    ok(idstation(
        &data2,
        &["audit", "checkpoint", "--operator", "clerk1"],
        CLERK_PASSWORD,
    ));
    export(&data2, &honest);
    ok(verify(&honest, &root(&data2), &["--previous", s(&first)]));
    ok(verify_log(&data2, &["--previous", s(&first)]));
    let py = python_verify(&honest, &root(&data2), &["--previous", s(&first)]);
    assert!(py.status.success(), "{}", text(&py));
}

#[test]
fn a_truncated_chain_is_caught_by_previous() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = station(tmp.path());
    let old = tmp.path().join("old");
    let old_head = export(&data, &old);
    let old_last = old_head["last_seq"].as_u64().expect("last_seq");
    // The insider cuts the last three events and every checkpoint from there on.
    let cut = old_last - 2;
    sqlite(
        &data,
        &format!(
            "DROP TRIGGER audit_events_no_delete; DROP TRIGGER audit_checkpoints_no_delete; \
             DELETE FROM audit_events WHERE seq >= {cut}; \
             DELETE FROM audit_checkpoints WHERE seq >= {cut};"
        ),
    );
    // Without the old head the shorter log verifies; with it, it is truncated.
    ok(verify_log(&data, &[]));
    refused(
        &verify_log(&data, &["--previous", s(&old)]),
        2,
        &format!(
            "log truncated: it ends at {} but the anchor is at {old_last}",
            cut - 1
        ),
    );
    // The next export (its own event is the only one after the cut) verifies alone; with
    // the old head it is truncated.
    let new = tmp.path().join("new");
    export(&data, &new);
    ok(verify(&new, &root(&data), &[]));
    refused(
        &verify(&new, &root(&data), &["--previous", s(&old)]),
        2,
        &format!(
            "history truncated: the previous export ends at sequence {old_last}, this one at {cut}"
        ),
    );
    python_fails(
        &python_verify(&new, &root(&data), &["--previous", s(&old)]),
        "history truncated",
    );
    // Once the log grows past the old head again, the reused sequence numbers are caught.
    for _ in 0..3 {
        ok(idstation(
            &data,
            &["audit", "checkpoint", "--operator", "clerk1"],
            CLERK_PASSWORD,
        ));
    }
    let longer = tmp.path().join("longer");
    export(&data, &longer);
    refused(
        &verify(&longer, &root(&data), &["--previous", s(&old)]),
        2,
        "history rewritten",
    );
    // An export that stops before the old head: truncated.
    let short = tmp.path().join("short");
    ok(idstation(
        &data,
        &[
            "audit",
            "export",
            "--out",
            s(&short),
            "--to-seq",
            &(cut - 1).to_string(),
            "--operator",
            "aud1",
        ],
        AUDITOR_PASSWORD,
    ));
    refused(
        &verify(&short, &root(&data), &["--previous", s(&old)]),
        2,
        &format!("history truncated: the previous export ends at sequence {old_last}"),
    );
}

#[test]
fn ca_admin_changes_are_checkpointed_at_once_and_published_to_the_outbox() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = station(tmp.path());
    let head = |data: &Path| -> (u64, u64) {
        let reg = registry::Registry::open(data.join("registry.sqlite")).expect("registry");
        let last = reg
            .verify_audit(&Default::default())
            .expect("verify")
            .last_seq;
        let cp = reg
            .audit_checkpoints()
            .expect("checkpoints")
            .last()
            .map(|c| c.seq)
            .unwrap_or(0);
        (last, cp)
    };
    // station() ended with a `ca issue`: already covered.
    let (last, cp) = head(&data);
    assert_eq!(
        last, cp,
        "ca issue: the newest event is covered by a checkpoint"
    );
    let crl = tmp.path().join("e.crl");
    let changes: Vec<Vec<&str>> = vec![
        vec![
            "ca",
            "crl",
            "--key",
            "esign-ca-1",
            "--out",
            s(&crl),
            "--operator",
            "admin",
        ],
        vec![
            "operator",
            "disable",
            "--name",
            "clerk1",
            "--operator",
            "admin",
        ],
        vec![
            "operator",
            "add",
            "--name",
            "admin2",
            "--role",
            "ca-admin",
            "--operator",
            "admin",
        ],
        vec!["ca", "rotate", "--ca", "esign", "--operator", "admin"],
        vec!["ca", "refuse", "1", "--operator", "admin"],
    ];
    for args in &changes {
        ok(idstation_new(
            &data,
            args,
            ADMIN_PASSWORD,
            "admin2-password-99",
        ));
        let (last, cp) = head(&data);
        assert_eq!(
            last, cp,
            "{args:?}: the newest event is covered by a checkpoint"
        );
    }
    // The head before the read: listing the outbox is itself audited (`outbox.read`).
    let (last, _) = head(&data);
    let o = ok(idstation(
        &data,
        &["--json", "outbox", "list", "--operator", "admin"],
        ADMIN_PASSWORD,
    ));
    let items: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let published: Vec<&serde_json::Value> = items
        .as_array()
        .expect("array")
        .iter()
        .filter(|m| m["topic"] == "audit.checkpoint")
        .collect();
    let newest = published.last().expect("checkpoints are published");
    assert_eq!(newest["payload"]["seq"].as_u64(), Some(last), "{items}");
    assert_eq!(
        newest["payload"]["checkpoint_encoding"],
        "idstation-audit-checkpoint-v1"
    );
    assert_eq!(
        newest["payload"]["signature"]
            .as_str()
            .map(|s| s.len() > 100),
        Some(true)
    );
}

#[test]
fn a_10_kb_operator_name_yields_a_bounded_audit_row() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = station(tmp.path());
    let name = "x".repeat(10 * 1024);
    let o = idstation(
        &data,
        &["audit", "checkpoint", "--operator", &name],
        CLERK_PASSWORD,
    );
    refused(&o, 6, "…(truncated, 10240 bytes)");
    assert!(o.stderr.len() < 400, "{}", text(&o));
    let ex = tmp.path().join("export");
    export(&data, &ex);
    let events = std::fs::read_to_string(ex.join("events.jsonl")).expect("events");
    let row: serde_json::Value = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("event"))
        .find(|v| v["action"] == "operator.refused")
        .expect("the refusal is audited");
    let logged = row["operator"].as_str().expect("operator");
    assert_eq!(
        logged,
        format!("{}…(truncated, 10240 bytes)", "x".repeat(64))
    );
    assert!(row["object"].as_str().expect("object").len() < 120, "{row}");
    assert!(
        events.lines().all(|l| l.len() < 2000),
        "no audit row carries the full name"
    );
}
