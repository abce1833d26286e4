//! `idstation audit …` and `idstation outbox …` end to end: a real SoftHSM2 token in the data
//! dir signs checkpoints and exports, the registry is the real SQLite file, and exports are
//! verified offline (our CLI with the data dir moved away, and the independent Python verifier
//! `registry/tests/verify_export.py`, written from docs/audit-format.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HSM_PIN: &str = "hsm-pin-8c41d2e07b";
const ADMIN_PASSWORD: &str = "admin-password-5f0e2a";
const CLERK_PASSWORD: &str = "clerk-password-b93c71";
const AUDITOR_PASSWORD: &str = "auditor-password-d4a618";
const SECRETS: [&str; 4] = [HSM_PIN, ADMIN_PASSWORD, CLERK_PASSWORD, AUDITOR_PASSWORD];

#[path = "common/holder_pin.rs"]
mod holder_pin;
#[path = "common/software_profiles.rs"]
mod software_profiles;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_idstation"));
    c.env("IDSTATION_LOG", "trace");
    c
}

/// Run idstation on `data` as the operator whose password is `password`.
fn idstation(data: &Path, args: &[&str], password: &str) -> Output {
    idstation_new(data, args, password, "unused-new-password")
}

fn idstation_new(data: &Path, args: &[&str], password: &str, new_password: &str) -> Output {
    let mut c = bin();
    c.arg("--data-dir").arg(data).args(args);
    let o = holder_pin::with_stdin(c, &[password, new_password]);
    assert_no_secret(&o);
    o
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_no_secret(o: &Output) {
    let all = text(o);
    for s in SECRETS {
        assert!(!all.contains(s), "a secret appeared in the output:\n{all}");
    }
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "idstation failed:\n{}", text(&o));
    o
}

fn exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", text(o)))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A data dir with a ca-admin `admin`, a clerk `clerk1`, an auditor `aud1`, one certificate
/// issued and one CRL published (so the log holds state changes of several kinds).
fn station(tmp: &Path) -> PathBuf {
    let data = tmp.join("data");
    ok(idstation(
        &data,
        &["init", "--admin", "admin", "--station", "audit-test"],
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
    let o = Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&key)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new("openssl")
        .args(["ec", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&spki)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", text(&o));
    let subject = tmp.join("subject.json");
    std::fs::write(
        &subject,
        r#"{"pinfl":"41505852610128","surname":"Toʻxtayeva","given_names":"Gʻulnora"}"#,
    )
    .expect("write subject");
    let cert = tmp.join("holder-auth.pem");
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
            s(&cert),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));
    let crl = tmp.join("esign.crl");
    ok(idstation(
        &data,
        &[
            "ca",
            "crl",
            "--key",
            "esign-ca-1",
            "--out",
            s(&crl),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));
    data
}

fn export(data: &Path, out: &Path, extra: &[&str], operator: &str, password: &str) -> Output {
    let mut args = vec!["--json", "audit", "export", "--out", s(out)];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--operator", operator]);
    idstation(data, &args, password)
}

/// `idstation audit verify` run from `cwd` with no data dir (XDG_DATA_HOME points at an empty
/// folder, HOME too), so nothing but the folder and the root can be used.
fn verify_offline(cwd: &Path, dir: &Path, root: Option<&Path>) -> Output {
    let empty = cwd.join("empty-home");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let mut c = bin();
    c.current_dir(cwd)
        .env_remove("IDSTATION_HSM_PIN")
        .env_remove("IDSTATION_PASSWORD")
        .env("XDG_DATA_HOME", &empty)
        .env("HOME", &empty)
        .args(["--json", "audit", "verify"])
        .arg(dir);
    if let Some(r) = root {
        c.arg("--root").arg(r);
    }
    c.output().expect("run idstation")
}

fn python_verify(dir: &Path, root: &Path) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../registry/tests/verify_export.py");
    Command::new("python3")
        .arg(script)
        .arg(dir)
        .arg(root)
        .output()
        .expect("python3 (Debian python3) runs the independent verifier")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

/// Events file of an export and its lines.
fn events_lines(dir: &Path) -> (PathBuf, Vec<String>) {
    let p = if dir.join("events.jsonl").exists() {
        dir.join("events.jsonl")
    } else {
        dir.join("events.csv")
    };
    let t = std::fs::read_to_string(&p).expect("events file");
    (p, t.lines().map(str::to_string).collect())
}

fn write_lines(p: &Path, lines: &[String]) {
    std::fs::write(p, lines.join("\n") + "\n").expect("write events");
}

#[test]
fn auditor_exports_jsonl_and_csv_that_verify_offline_without_the_data_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = station(tmp.path());

    // A clerk may sign a checkpoint; an auditor, who changes nothing, may not.
    let o = ok(idstation(
        &data,
        &["--json", "audit", "checkpoint", "--operator", "clerk1"],
        CLERK_PASSWORD,
    ));
    let cp = json(&o);
    assert!(cp["seq"].as_u64().expect("seq") >= 6, "{cp}");
    let o = idstation(
        &data,
        &["audit", "checkpoint", "--operator", "aud1"],
        AUDITOR_PASSWORD,
    );
    exit(&o, 6);

    let jsonl = tmp.path().join("export-jsonl");
    let r = json(&ok(export(&data, &jsonl, &[], "aud1", AUDITOR_PASSWORD)));
    let count = r["count"].as_u64().expect("count");
    assert_eq!(r["first_seq"], 1, "{r}");
    assert_eq!(r["last_seq"].as_u64(), Some(count), "{r}");
    // The export's own event is the last one exported, and a checkpoint covers it.
    assert_eq!(r["checkpoint"]["seq"], r["last_seq"], "{r}");
    assert_eq!(r["checkpoint"]["hash"], r["last_hash"], "{r}");
    assert!(r["checkpoints"].as_u64().expect("checkpoints") >= 2, "{r}");
    assert!(jsonl.join("manifest.json").is_file());
    let (_, lines) = events_lines(&jsonl);
    assert_eq!(lines.len() as u64, count);
    let actions: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("event JSON");
            v["action"].as_str().expect("action").to_string()
        })
        .collect();
    for a in [
        "station.initialised",
        "operator.added",
        "operator.refused",
        "audit.checkpoint",
        "audit.export",
    ] {
        assert!(actions.iter().any(|x| x == a), "no {a} in {actions:?}");
    }
    assert_eq!(actions.last().map(String::as_str), Some("audit.export"));

    let csv = tmp.path().join("export-csv");
    let r = json(&ok(export(
        &data,
        &csv,
        &["--format", "csv"],
        "aud1",
        AUDITOR_PASSWORD,
    )));
    assert_eq!(r["count"].as_u64(), Some(count + 1), "{r}");
    let (_, csv_lines) = events_lines(&csv);
    assert_eq!(
        csv_lines[0],
        "seq,time,operator,role,station,action,object,details,prev_hash,hash"
    );

    let range = tmp.path().join("export-range");
    let r = json(&ok(export(
        &data,
        &range,
        &["--from-seq", "2", "--to-seq", "4"],
        "admin",
        ADMIN_PASSWORD,
    )));
    assert_eq!(
        (r["first_seq"].clone(), r["last_seq"].clone()),
        (2.into(), 4.into()),
        "{r}"
    );
    assert_eq!(r["count"], 3, "{r}");
    // An open end is the newest event: the export's own.
    let tail = tmp.path().join("export-tail");
    let r = json(&ok(export(
        &data,
        &tail,
        &["--from-seq", "5"],
        "aud1",
        AUDITOR_PASSWORD,
    )));
    assert_eq!(r["first_seq"], 5, "{r}");
    assert_eq!(r["last_seq"], r["checkpoint"]["seq"], "{r}");
    // A range past the end of the log is refused.
    let o = export(
        &data,
        &tmp.path().join("export-past"),
        &["--from-seq", "1", "--to-seq", "100000"],
        "aud1",
        AUDITOR_PASSWORD,
    );
    assert!(!o.status.success(), "{}", text(&o));

    let first: serde_json::Value = serde_json::from_str(&lines[0]).expect("event JSON");
    let today = first["time"].as_str().expect("time")[..10].to_string();
    let by_date = tmp.path().join("export-date");
    let r = json(&ok(export(
        &data,
        &by_date,
        &["--from", &today, "--to", &today],
        "aud1",
        AUDITOR_PASSWORD,
    )));
    assert_eq!(r["first_seq"], 1, "{r}");
    let empty = tmp.path().join("export-empty");
    let r = json(&ok(export(
        &data,
        &empty,
        &["--from", "2001-01-01", "--to", "2001-12-31"],
        "aud1",
        AUDITOR_PASSWORD,
    )));
    assert_eq!(r["count"], 0, "{r}");

    // An existing export is never overwritten.
    exit(&export(&data, &jsonl, &[], "aud1", AUDITOR_PASSWORD), 5);

    // The database verifies, checkpoint signatures included.
    let v = json(&ok(idstation(
        &data,
        &["--json", "audit", "verify-log", "--operator", "aud1"],
        AUDITOR_PASSWORD,
    )));
    assert_eq!(v["checkpoint_signatures_checked"], true, "{v}");

    // With the data dir's own root by default.
    let o = ok(idstation(&data, &["audit", "verify", s(&jsonl)], ""));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("OK: "),
        "{}",
        text(&o)
    );

    // Move the data dir away: verification needs only the folder and the root.
    let root = tmp.path().join("national-root.pem");
    std::fs::copy(data.join("ca/root-ca-1.pem"), &root).expect("copy root");
    let moved = tmp.path().join("moved-away");
    std::fs::rename(&data, &moved).expect("move data dir");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    for (dir, n) in [(&jsonl, count), (&csv, count + 1), (&range, 3), (&empty, 0)] {
        let o = verify_offline(&elsewhere, dir, Some(&root));
        assert!(o.status.success(), "{}", text(&o));
        let v = json(&o);
        assert_eq!(v["count"].as_u64(), Some(n), "{v}");
    }
    let v = json(&verify_offline(&elsewhere, &by_date, Some(&root)));
    assert_eq!(v["first_seq"], 1, "{v}");
    // Relative paths from another working dir.
    let o = verify_offline(
        &elsewhere,
        Path::new("../export-jsonl"),
        Some(Path::new("../national-root.pem")),
    );
    assert!(o.status.success(), "{}", text(&o));
    // No --root and no data dir: exit 2 naming --root.
    let o = verify_offline(&elsewhere, &jsonl, None);
    exit(&o, 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--root"),
        "{}",
        text(&o)
    );

    // The independent verifier agrees.
    let o = python_verify(&tail, &root);
    assert!(o.status.success(), "{}", text(&o));
    let o = verify_offline(&elsewhere, &tail, Some(&root));
    assert!(o.status.success(), "{}", text(&o));
    for (dir, n) in [(&jsonl, count), (&csv, count + 1), (&range, 3)] {
        let o = python_verify(dir, &root);
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).starts_with(&format!("OK {n} ")),
            "{}",
            text(&o)
        );
    }

    // Another station's root is refused.
    let other = tempfile::tempdir().expect("tempdir");
    let other_data = other.path().join("data");
    ok(idstation(
        &other_data,
        &["init", "--admin", "admin"],
        ADMIN_PASSWORD,
    ));
    let o = verify_offline(
        &elsewhere,
        &jsonl,
        Some(&other_data.join("ca/root-ca-1.pem")),
    );
    exit(&o, 2);
}

#[test]
fn tampered_exports_fail_with_exit_2_naming_the_sequence_number() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = station(tmp.path());
    let root = data.join("ca/root-ca-1.pem");
    for format in ["jsonl", "csv"] {
        let good = tmp.path().join(format!("good-{format}"));
        ok(export(
            &data,
            &good,
            &["--format", format],
            "aud1",
            AUDITOR_PASSWORD,
        ));
        // Line index of event 3 (the CSV has a header line first).
        let i3 = if format == "csv" { 3 } else { 2 };

        let (p, mut lines) = events_lines(&good);
        let name = p.file_name().expect("name").to_owned();
        let edit = tmp.path().join(format!("edit-{format}"));
        copy_dir(&good, &edit);
        assert!(lines[i3].contains("admin"), "{}", lines[i3]);
        lines[i3] = lines[i3].replacen("admin", "admon", 1);
        write_lines(&edit.join(&name), &lines);

        let (_, mut lines) = events_lines(&good);
        let del = tmp.path().join(format!("delete-{format}"));
        copy_dir(&good, &del);
        lines.remove(i3);
        write_lines(&del.join(&name), &lines);

        let (_, mut lines) = events_lines(&good);
        let swap = tmp.path().join(format!("swap-{format}"));
        copy_dir(&good, &swap);
        lines.swap(i3, i3 + 1);
        write_lines(&swap.join(&name), &lines);

        let (_, mut lines) = events_lines(&good);
        let cut = tmp.path().join(format!("truncate-{format}"));
        copy_dir(&good, &cut);
        lines.pop();
        write_lines(&cut.join(&name), &lines);
        let last = lines.len() as u64 + if format == "csv" { 0 } else { 1 };

        for (dir, seq) in [(&edit, 3), (&del, 3), (&swap, 3), (&cut, last)] {
            let o = idstation(&data, &["audit", "verify", s(dir), "--root", s(&root)], "");
            exit(&o, 2);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains(&format!("sequence {seq}")),
                "{} should name sequence {seq}:\n{}",
                dir.display(),
                text(&o)
            );
            // The independent verifier rejects it too.
            let o = python_verify(dir, &root);
            assert!(!o.status.success(), "{}", text(&o));
        }

        // A manifest edited after signing: refused (its signature no longer verifies).
        let m = tmp.path().join(format!("manifest-{format}"));
        copy_dir(&good, &m);
        let t = std::fs::read_to_string(m.join("manifest.json")).expect("manifest");
        std::fs::write(m.join("manifest.json"), t.replacen("aud1", "aud2", 1)).expect("write");
        let o = idstation(&data, &["audit", "verify", s(&m), "--root", s(&root)], "");
        exit(&o, 2);
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("manifest.sig"),
            "{}",
            text(&o)
        );

        // A missing file.
        let gone = tmp.path().join(format!("nosig-{format}"));
        copy_dir(&good, &gone);
        std::fs::remove_file(gone.join("manifest.sig")).expect("rm");
        exit(
            &idstation(
                &data,
                &["audit", "verify", s(&gone), "--root", s(&root)],
                "",
            ),
            2,
        );
        // The untouched export still verifies.
        ok(idstation(
            &data,
            &["audit", "verify", s(&good), "--root", s(&root)],
            "",
        ));
    }
}

#[test]
fn a_clerk_cannot_export_an_auditor_cannot_change_anything_and_refusals_are_audited() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = station(tmp.path());

    let out = tmp.path().join("clerk-export");
    let o = export(&data, &out, &[], "clerk1", CLERK_PASSWORD);
    exit(&o, 6);
    assert!(!out.join("manifest.json").exists(), "nothing exported");

    // An auditor may not publish a CRL, issue, add operators or acknowledge outbox messages.
    let crl = tmp.path().join("auditor.crl");
    exit(
        &idstation(
            &data,
            &[
                "ca",
                "crl",
                "--key",
                "esign-ca-1",
                "--out",
                s(&crl),
                "--operator",
                "aud1",
            ],
            AUDITOR_PASSWORD,
        ),
        6,
    );
    assert!(!crl.exists());
    exit(
        &idstation_new(
            &data,
            &[
                "operator",
                "add",
                "--name",
                "eve",
                "--role",
                "ca-admin",
                "--operator",
                "aud1",
            ],
            AUDITOR_PASSWORD,
            "eve-password-123456",
        ),
        6,
    );
    // A wrong password is refused the same way.
    exit(&export(&data, &out, &[], "aud1", CLERK_PASSWORD), 6);

    // The refusals are in the exported log, with who and what.
    let ex = tmp.path().join("export");
    ok(export(&data, &ex, &[], "aud1", AUDITOR_PASSWORD));
    let (_, lines) = events_lines(&ex);
    let refused: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("event"))
        .filter(|v| v["action"] == "operator.refused")
        .collect();
    let details: Vec<(String, serde_json::Value)> = refused
        .iter()
        .map(|v| {
            (
                v["operator"].as_str().expect("operator").to_string(),
                serde_json::from_str(v["details"].as_str().expect("details")).expect("json"),
            )
        })
        .collect();
    let has = |op: &str, action: &str| {
        details
            .iter()
            .any(|(o, d)| o == op && d["action"] == action)
    };
    assert!(has("clerk1", "export the audit log"), "{details:?}");
    assert!(has("aud1", "publish CRLs"), "{details:?}");
    assert!(has("aud1", "add operators"), "{details:?}");
    assert!(
        details.iter().any(|(o, d)| o == "aud1"
            && d["reason"]
                .as_str()
                .is_some_and(|r| r.contains("password is wrong"))),
        "{details:?}"
    );
    // No secret in the database file or the export.
    let mut files = vec![data.join("registry.sqlite"), ex.join("events.jsonl")];
    for f in ["registry.sqlite-wal"] {
        if data.join(f).exists() {
            files.push(data.join(f));
        }
    }
    for f in files {
        let bytes = std::fs::read(&f).expect("read");
        for secret in SECRETS {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a secret",
                f.display()
            );
        }
    }
}

#[test]
fn outbox_list_needs_an_operator_and_ack_is_audited_for_clerks_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = station(tmp.path());
    // The issuance job queues outbox messages; it is not part of this test, so queue one the
    // way `Tx::complete_issuance` does, through the registry.
    {
        let mut reg = registry::Registry::open(data.join("registry.sqlite")).expect("registry");
        reg.write(|tx| {
            tx.outbox_push(
                registry::TOPIC_EGOV_REGISTER_HOLDER,
                &serde_json::json!({ "pinfl": "41505852610128", "document": "AA0000001" }),
            )
        })
        .expect("push");
    }
    // Signed audit checkpoints are published too (topic audit.checkpoint); this test is
    // about the e-government message.
    let egov = |o: &Output| -> Vec<serde_json::Value> {
        json(o)
            .as_array()
            .expect("array")
            .iter()
            .filter(|m| m["topic"] == registry::TOPIC_EGOV_REGISTER_HOLDER)
            .cloned()
            .collect()
    };
    let o = ok(idstation(
        &data,
        &["--json", "outbox", "list", "--operator", "clerk1"],
        CLERK_PASSWORD,
    ));
    let items = egov(&o);
    assert_eq!(items.len(), 1, "{items:?}");
    let id = items[0]["id"].as_i64().expect("id").to_string();
    assert_eq!(items[0]["topic"], registry::TOPIC_EGOV_REGISTER_HOLDER);
    assert_eq!(items[0]["payload"]["document"], "AA0000001");
    let o = ok(idstation(
        &data,
        &["outbox", "list", "--operator", "clerk1"],
        CLERK_PASSWORD,
    ));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.starts_with(&format!("{id}\tegov.register-holder\t"))),
        "{}",
        text(&o)
    );

    // A standalone station has no centre: no dead letters to list, no retry (exit 2, the
    // option or the centre named).
    let o = idstation(
        &data,
        &["outbox", "list", "--failed", "--operator", "clerk1"],
        CLERK_PASSWORD,
    );
    exit(&o, 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("failed"),
        "{}",
        text(&o)
    );
    let o = idstation(
        &data,
        &["outbox", "retry", &id, "--operator", "admin"],
        ADMIN_PASSWORD,
    );
    exit(&o, 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not enrolled"),
        "{}",
        text(&o)
    );

    // An auditor may not acknowledge; a clerk may, once.
    exit(
        &idstation(
            &data,
            &["outbox", "ack", &id, "--operator", "aud1"],
            AUDITOR_PASSWORD,
        ),
        6,
    );
    ok(idstation(
        &data,
        &["outbox", "ack", &id, "--operator", "clerk1"],
        CLERK_PASSWORD,
    ));
    let again = idstation(
        &data,
        &["outbox", "ack", &id, "--operator", "clerk1"],
        CLERK_PASSWORD,
    );
    exit(&again, 2);
    assert!(String::from_utf8_lossy(&again.stderr).contains(&format!("outbox message {id}")));
    let o = ok(idstation(
        &data,
        &["--json", "outbox", "list", "--operator", "clerk1"],
        CLERK_PASSWORD,
    ));
    assert_eq!(egov(&o), Vec::<serde_json::Value>::new());

    let ex = tmp.path().join("export");
    ok(export(&data, &ex, &[], "admin", ADMIN_PASSWORD));
    let (_, lines) = events_lines(&ex);
    let acked: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("event"))
        .filter(|v| v["action"] == "outbox.acked")
        .collect();
    assert_eq!(acked.len(), 1, "{acked:?}");
    assert_eq!(acked[0]["operator"], "clerk1");
    assert_eq!(acked[0]["object"], format!("outbox:{id}"));
}

#[test]
fn verify_log_names_the_sequence_of_an_event_edited_in_the_database_and_export_refuses_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = station(tmp.path());
    ok(idstation(
        &data,
        &["audit", "checkpoint", "--operator", "admin"],
        ADMIN_PASSWORD,
    ));
    ok(idstation(
        &data,
        &["audit", "verify-log", "--operator", "aud1"],
        AUDITOR_PASSWORD,
    ));
    // Someone with raw access to the file drops the append-only triggers and edits event 3.
    let o = Command::new("sqlite3")
        .arg(data.join("registry.sqlite"))
        .arg(
            "DROP TRIGGER audit_events_no_update; \
             UPDATE audit_events SET operator = 'mallory' WHERE seq = 3;",
        )
        .output()
        .expect("sqlite3 (Debian sqlite3)");
    assert!(o.status.success(), "{}", text(&o));
    let o = idstation(
        &data,
        &["audit", "verify-log", "--operator", "aud1"],
        AUDITOR_PASSWORD,
    );
    exit(&o, 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sequence 3"),
        "{}",
        text(&o)
    );
    // A broken log is not signed into an export.
    let out = tmp.path().join("export");
    let o = export(&data, &out, &[], "aud1", AUDITOR_PASSWORD);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sequence 3"),
        "{}",
        text(&o)
    );
    assert!(!out.join("manifest.json").exists());
}

/// `sqlite3 FILE SQL` (Debian's sqlite3, not this project's code): its output, trimmed.
fn sqlite(file: &Path, sql: &str) -> String {
    let o = Command::new("sqlite3")
        .arg(file)
        .arg(sql)
        .output()
        .expect("sqlite3 (Debian sqlite3)");
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// `backup create` (ca-admin) writes a private copy of the registry that sqlite3 reads whole,
/// with every audit event up to the backup's own; `backup verify` checks it with the station's
/// audit key; the backup is audited with the file's SHA-256. Refused: a clerk, an existing file
/// or link, a directory other users may write to. A copy edited afterwards, cut short, or taken
/// from another station fails `verify` naming what is wrong.
#[test]
fn a_backup_is_a_private_copy_that_verifies_and_a_changed_or_foreign_one_does_not() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = station(tmp.path());
    ok(idstation(
        &data,
        &["audit", "checkpoint", "--operator", "admin"],
        ADMIN_PASSWORD,
    ));
    let dir = tmp.path().join("backups");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let file = dir.join("registry-1.sqlite");
    let create = |out: &Path, operator: &str, password: &str| {
        idstation(
            &data,
            &[
                "--json",
                "backup",
                "create",
                "--out",
                s(out),
                "--operator",
                operator,
            ],
            password,
        )
    };
    let made = json(&ok(create(&file, "admin", ADMIN_PASSWORD)));
    assert_eq!(
        std::fs::metadata(&file)
            .expect("backup")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // sqlite3 reads it whole; it holds what the registry held before the backup's own event.
    let live = data.join("registry.sqlite");
    assert_eq!(sqlite(&file, "PRAGMA integrity_check"), "ok");
    let q = "SELECT count(*) FROM holders; SELECT count(*) FROM certificates; \
             SELECT max(seq) FROM audit_events";
    let copy: Vec<String> = sqlite(&file, q).lines().map(str::to_owned).collect();
    let now: Vec<String> = sqlite(&live, q).lines().map(str::to_owned).collect();
    assert_eq!(copy[..2], now[..2]);
    let last: u64 = copy[2].parse().expect("seq");
    assert_eq!(
        now[2].parse::<u64>().expect("seq"),
        last + 1,
        "the backup's own event after it"
    );
    assert_eq!(made["last_seq"], last);
    // The backup audited with the file's SHA-256 (sha256sum's).
    let o = Command::new("sha256sum")
        .arg(&file)
        .output()
        .expect("sha256sum");
    let digest = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned();
    assert_eq!(made["sha256"], digest.as_str());
    let event = sqlite(
        &live,
        "SELECT operator || ' ' || details FROM audit_events WHERE action = 'registry.backed-up'",
    );
    assert!(
        event.starts_with("admin ") && event.contains(&digest),
        "{event}"
    );
    let verified = json(&ok(idstation(
        &data,
        &["--json", "backup", "verify", s(&file), "--operator", "aud1"],
        AUDITOR_PASSWORD,
    )));
    assert_eq!(verified["sha256"], digest.as_str());
    assert!(
        verified["checkpoints"].as_u64().expect("checkpoints") >= 1,
        "{verified}"
    );
    assert_eq!(verified["backup_copy"], true);
    assert!(
        verified["recorded"]
            .as_str()
            .is_some_and(|r| r.contains("by admin")),
        "{verified}"
    );

    // Refused: a clerk (audited), the same file again, a link, a directory others may write to.
    exit(
        &create(&dir.join("clerk.sqlite"), "clerk1", CLERK_PASSWORD),
        6,
    );
    assert!(!dir.join("clerk.sqlite").exists());
    let o = create(&file, "admin", ADMIN_PASSWORD);
    exit(&o, 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("out"),
        "{}",
        text(&o)
    );
    std::os::unix::fs::symlink(tmp.path().join("elsewhere"), dir.join("link.sqlite")).expect("ln");
    exit(
        &create(&dir.join("link.sqlite"), "admin", ADMIN_PASSWORD),
        2,
    );
    assert!(!tmp.path().join("elsewhere").exists());
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let o = create(&open.join("b.sqlite"), "admin", ADMIN_PASSWORD);
    exit(&o, 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("may be written by other users"),
        "{}",
        text(&o)
    );
    assert!(!open.join("b.sqlite").exists());

    // A copy edited afterwards, one cut short, one of another station.
    let verify = |f: &Path| {
        idstation(
            &data,
            &["backup", "verify", s(f), "--operator", "aud1"],
            AUDITOR_PASSWORD,
        )
    };
    let edited = dir.join("edited.sqlite");
    std::fs::copy(&file, &edited).expect("copy");
    sqlite(
        &edited,
        "DROP TRIGGER audit_events_no_update; UPDATE audit_events SET operator = 'mallory' WHERE seq = 3;",
    );
    let o = verify(&edited);
    exit(&o, 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sequence 3"),
        "{}",
        text(&o)
    );
    let short = dir.join("short.sqlite");
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&short, &bytes[..bytes.len() / 2]).expect("write");
    exit(&verify(&short), 2);
    // A copy of an older schema is not migrated by `verify` (the file is left as it is).
    let older = dir.join("older.sqlite");
    std::fs::copy(&file, &older).expect("copy");
    sqlite(&older, "PRAGMA user_version = 11");
    let before = std::fs::read(&older).expect("read");
    let o = verify(&older);
    exit(&o, 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("a copy taken by an older version"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&older).expect("read"), before);
    let other = station(&tmp.path().join("other"));
    ok(idstation(
        &other,
        &["audit", "checkpoint", "--operator", "admin"],
        ADMIN_PASSWORD,
    ));
    let foreign = dir.join("foreign.sqlite");
    ok(idstation(
        &other,
        &[
            "backup",
            "create",
            "--out",
            s(&foreign),
            "--operator",
            "admin",
        ],
        ADMIN_PASSWORD,
    ));
    let o = verify(&foreign);
    exit(&o, 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("checkpoint signature"),
        "{}",
        text(&o)
    );

    // The registry lost: the copy put in its place. Nothing works on it until the restore is
    // finished; `backup restored` needs the first number on no card (a standalone station),
    // moves the number block on to it, audits the restore, and the station works again.
    let old = tmp.path().join("registry-before.sqlite");
    std::fs::rename(&live, &old).expect("move the registry aside");
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("registry.sqlite{ext}")));
    }
    // Without its registry the station does not start a new, empty one.
    let o = idstation(
        &data,
        &["audit", "verify-log", "--operator", "aud1"],
        AUDITOR_PASSWORD,
    );
    exit(&o, 5);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is missing from this initialised station"),
        "{}",
        text(&o)
    );
    assert!(!live.exists());
    std::fs::copy(&file, &live).expect("put the copy in place");
    std::fs::set_permissions(&live, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let o = idstation(
        &data,
        &["audit", "verify-log", "--operator", "aud1"],
        AUDITOR_PASSWORD,
    );
    exit(&o, 5);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is a backup copy put back in place"),
        "{}",
        text(&o)
    );
    let restored = |extra: &[&str]| {
        let mut args = vec!["--json", "backup", "restored", "--operator", "admin"];
        args.extend_from_slice(extra);
        idstation(&data, &args, ADMIN_PASSWORD)
    };
    // A copy damaged in place (an index pointing at another table's pages: it opens and reads,
    // and fails `PRAGMA integrity_check`): the restore refuses it before writing anything.
    let pristine = std::fs::read(&live).expect("read");
    let root = sqlite(
        &live,
        "SELECT rootpage FROM sqlite_master WHERE name = 'audit_events'",
    );
    sqlite(
        &live,
        &format!(
            "PRAGMA writable_schema = ON; \
             UPDATE sqlite_master SET rootpage = {root} WHERE name = 'holders_surname';"
        ),
    );
    let series = sqlite(&live, "SELECT series FROM number_blocks");
    let o = restored(&["--next-number", &format!("{series}0000005")]);
    exit(&o, 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is damaged"),
        "{}",
        text(&o)
    );
    assert_eq!(sqlite(&live, "PRAGMA application_id"), "1229210187");
    std::fs::write(&live, &pristine).expect("the intact copy back");
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("registry.sqlite{ext}")));
    }
    let o = restored(&[]);
    exit(&o, 2);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("next_number"),
        "{}",
        text(&o)
    );
    exit(
        &restored(&["--next-number", &format!("{series}0000000")]),
        2,
    );
    let done = json(&ok(restored(&[
        "--next-number",
        &format!("{series}0000005"),
    ])));
    assert_eq!(
        done["number_blocks"],
        serde_json::json!([{ "series": series, "first": 1, "last": 9_999_999,
                             "next_before": 1, "next_after": 5 }]),
        "{done}"
    );
    assert_eq!(sqlite(&live, "SELECT next FROM number_blocks"), "5");
    assert_eq!(sqlite(&live, "PRAGMA application_id"), "0");
    ok(idstation(
        &data,
        &["audit", "verify-log", "--operator", "aud1"],
        AUDITOR_PASSWORD,
    ));
    let event = sqlite(
        &live,
        "SELECT operator || ' ' || details FROM audit_events WHERE action = 'registry.restored'",
    );
    assert!(
        event.starts_with("admin ") && event.contains("0000005"),
        "{event}"
    );
    exit(
        &restored(&["--next-number", &format!("{series}0000006")]),
        5,
    );
}
