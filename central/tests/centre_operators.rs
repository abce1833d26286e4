//! The centre's operators and its national audit log, end to end on a real PostgreSQL cluster
//! and a real SoftHSM2 token: `idcentral operator add|disable|enable|password|unlock` with the
//! station's rules (dual control for ca-admins, the last active ca-admin kept, a lock after 5
//! wrong passwords), HSM-signed checkpoints, and `audit export|verify` in the station's format,
//! accepted by the station's offline verifier and refused after one byte is changed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;

use common::*;
use serde_json::json;

const ADMIN2_PASSWORD: &str = "second-admin-pw-3b8d";
const AUDITOR_PASSWORD: &str = "auditor-pw-0f6e2a";
const ADMIN3_PASSWORD: &str = "third-admin-pw-9c41";

/// `idcentral` with these passwords as the lines of standard input; no password appears in the
/// output.
fn run(config: &Path, args: &[&str], secrets: &[&str]) -> Output {
    let out = idcentral(config, args, &(secrets.join("\n") + "\n"));
    let all = text(&out);
    for s in [ADMIN2_PASSWORD, AUDITOR_PASSWORD, ADMIN3_PASSWORD] {
        assert!(
            !all.contains(s),
            "a password appeared in the output:\n{all}"
        );
    }
    out
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `init --admin admin --second-admin admin2`.
fn init_two_admins(config: &Path) {
    ok(run(
        config,
        &["init", "--admin", "admin", "--second-admin", "admin2"],
        &[ADMIN_PASSWORD, ADMIN2_PASSWORD],
    ));
}

/// The details of the newest event with `action` (canonical JSON).
async fn last_details(client: &tokio_postgres::Client, action: &str) -> serde_json::Value {
    let d: String = client
        .query_one(
            "SELECT details FROM audit_log WHERE action = $1 ORDER BY seq DESC LIMIT 1",
            &[&action],
        )
        .await
        .unwrap_or_else(|e| panic!("no {action} event: {e}"))
        .get(0);
    serde_json::from_str(&d).unwrap()
}

async fn refusal_reasons(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT details FROM audit_log WHERE action = 'operator.refused' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.get::<_, String>(0)).unwrap();
            v["reason"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// (newest event, newest checkpoint) sequence numbers.
async fn heads(client: &tokio_postgres::Client) -> (i64, Option<i64>) {
    let r = client
        .query_one(
            "SELECT (SELECT max(seq) FROM audit_log), (SELECT max(seq) FROM audit_checkpoints)",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[test]
fn operators_keep_the_stations_rules_with_dual_control_for_ca_admins() {
    let (_tmp, cluster, config) = centre("");
    init_two_admins(&config);
    let rt = rt();
    let client = rt.block_on(db(&cluster));
    let admin = ["--operator", "admin"];

    // An auditor is added by one ca-admin (their password, then the new one's).
    let out = ok(run(
        &config,
        &[
            &["operator", "add", "--name", "aud", "--role", "auditor"][..],
            &admin,
        ]
        .concat(),
        &[ADMIN_PASSWORD, AUDITOR_PASSWORD],
    ));
    assert!(out.contains("Operator aud (auditor) active"), "{out}");
    // Every change ends with a checkpoint over its event.
    let (last, cp) = rt.block_on(heads(&client));
    assert_eq!(cp, Some(last), "the change is anchored by a checkpoint");

    // Refusals name the field and the rule.
    let add_admin3 = [
        &["operator", "add", "--name", "admin3", "--role", "ca-admin"][..],
        &admin,
    ]
    .concat();
    refused(
        &run(&config, &add_admin3, &[ADMIN_PASSWORD, ADMIN3_PASSWORD]),
        2,
        "approved-by: add admin3 as a ca-admin needs a second ca-admin's approval",
    );
    let self_approved = [&add_admin3[..], &["--approved-by", "admin"]].concat();
    refused(
        &run(
            &config,
            &self_approved,
            &[ADMIN_PASSWORD, ADMIN3_PASSWORD, ADMIN_PASSWORD],
        ),
        6,
        "approved-by: admin cannot approve this",
    );
    let auditor_approved = [&add_admin3[..], &["--approved-by", "aud"]].concat();
    refused(
        &run(
            &config,
            &auditor_approved,
            &[ADMIN_PASSWORD, ADMIN3_PASSWORD, AUDITOR_PASSWORD],
        ),
        6,
        "aud is a auditor; approve a new ca-admin needs the role ca-admin",
    );
    let n: i64 = rt
        .block_on(client.query_one("SELECT count(*) FROM operators WHERE name = 'admin3'", &[]))
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "no refused attempt added the ca-admin");
    refused(
        &run(
            &config,
            &[
                &["operator", "add", "--name", "aud2", "--role", "auditor"][..],
                &admin,
            ]
            .concat(),
            &[ADMIN_PASSWORD, "short"],
        ),
        2,
        "password: must have at least 10 characters",
    );
    refused(
        &run(
            &config,
            &[
                &["operator", "add", "--name", "Bad Name", "--role", "auditor"][..],
                &admin,
            ]
            .concat(),
            &[ADMIN_PASSWORD, AUDITOR_PASSWORD],
        ),
        2,
        "name: \"Bad Name\" must be 1-64 of a-z 0-9",
    );
    refused(
        &run(
            &config,
            &[
                &["operator", "add", "--name", "aud", "--role", "auditor"][..],
                &admin,
            ]
            .concat(),
            &[ADMIN_PASSWORD, AUDITOR_PASSWORD],
        ),
        5,
        "operator aud already exists",
    );
    refused(
        &run(
            &config,
            &[
                "operator",
                "add",
                "--name",
                "x1",
                "--role",
                "auditor",
                "--operator",
                "aud",
            ],
            &[AUDITOR_PASSWORD, AUDITOR_PASSWORD],
        ),
        6,
        "aud is a auditor; add operators needs the role ca-admin",
    );

    // With a second ca-admin's approval (their password after the new one's) it is added.
    let approved = [&add_admin3[..], &["--approved-by", "admin2"]].concat();
    let out = ok(run(
        &config,
        &approved,
        &[ADMIN_PASSWORD, ADMIN3_PASSWORD, ADMIN2_PASSWORD],
    ));
    assert!(out.contains("approved by admin2"), "{out}");
    let d = rt.block_on(last_details(&client, "operator.added"));
    assert_eq!(d["role"], "ca-admin");
    assert_eq!(d["approved_by"], "admin2");
    let reasons = rt.block_on(refusal_reasons(&client));
    for r in [
        "no second ca-admin",
        "approver not a second ca-admin",
        "role",
    ] {
        assert!(
            reasons.iter().any(|x| x == r),
            "{r} not audited: {reasons:?}"
        );
    }

    // disable / enable: not oneself; a disabled operator cannot log in; a ca-admin comes back
    // only with a second ca-admin's approval.
    refused(
        &run(
            &config,
            &[&["operator", "disable", "--name", "admin"][..], &admin].concat(),
            &[ADMIN_PASSWORD],
        ),
        6,
        "admin cannot disable themself; another ca-admin must do it",
    );
    ok(run(
        &config,
        &[&["operator", "disable", "--name", "aud"][..], &admin].concat(),
        &[ADMIN_PASSWORD],
    ));
    let verify_as_aud = ["audit", "verify-log", "--operator", "aud"];
    refused(
        &run(&config, &verify_as_aud, &[AUDITOR_PASSWORD]),
        6,
        "aud: operator name or password is wrong",
    );
    refused(
        &run(
            &config,
            &[&["operator", "disable", "--name", "aud"][..], &admin].concat(),
            &[ADMIN_PASSWORD],
        ),
        5,
        "operator aud is already disabled",
    );
    ok(run(
        &config,
        &[&["operator", "enable", "--name", "aud"][..], &admin].concat(),
        &[ADMIN_PASSWORD],
    ));
    ok(run(&config, &verify_as_aud, &[AUDITOR_PASSWORD]));
    ok(run(
        &config,
        &[&["operator", "disable", "--name", "admin3"][..], &admin].concat(),
        &[ADMIN_PASSWORD],
    ));
    refused(
        &run(
            &config,
            &[&["operator", "enable", "--name", "admin3"][..], &admin].concat(),
            &[ADMIN_PASSWORD],
        ),
        2,
        "approved-by: enable admin3 as a ca-admin needs a second ca-admin's approval",
    );
    ok(run(
        &config,
        &[
            &["operator", "enable", "--name", "admin3"][..],
            &admin,
            &["--approved-by", "admin2"],
        ]
        .concat(),
        &[ADMIN_PASSWORD, ADMIN2_PASSWORD],
    ));
    assert_eq!(
        rt.block_on(last_details(&client, "operator.enabled"))["approved_by"],
        "admin2"
    );

    // Five wrong passwords lock an account; the right one is then refused alike; another
    // ca-admin unlocks it.
    for _ in 0..5 {
        refused(
            &run(&config, &verify_as_aud, &["wrong-password-1"]),
            6,
            "aud: operator name or password is wrong",
        );
    }
    refused(
        &run(&config, &verify_as_aud, &[AUDITOR_PASSWORD]),
        6,
        "aud: operator name or password is wrong",
    );
    let list = ok(run(
        &config,
        &[&["operator", "list"][..], &admin].concat(),
        &[ADMIN_PASSWORD],
    ));
    assert!(
        list.lines()
            .any(|l| l.starts_with("aud ") && l.contains("locked")),
        "{list}"
    );
    assert!(rt
        .block_on(refusal_reasons(&client))
        .iter()
        .any(|r| r == "account locked"));
    refused(
        &run(
            &config,
            &[&["operator", "unlock", "--name", "admin"][..], &admin].concat(),
            &[ADMIN_PASSWORD],
        ),
        6,
        "admin cannot unlock themself",
    );
    ok(run(
        &config,
        &[&["operator", "unlock", "--name", "aud"][..], &admin].concat(),
        &[ADMIN_PASSWORD],
    ));
    let d = rt.block_on(last_details(&client, "operator.unlocked"));
    assert_eq!(d["was_locked"], true);
    ok(run(&config, &verify_as_aud, &[AUDITOR_PASSWORD]));

    // Own password: the old one logs in, the new one (rule checked) replaces it.
    let new_pw = "auditor-new-pw-77d1";
    refused(
        &run(
            &config,
            &["operator", "password", "--operator", "aud"],
            &[AUDITOR_PASSWORD, "short"],
        ),
        2,
        "password: must have at least 10 characters",
    );
    ok(run(
        &config,
        &["operator", "password", "--operator", "aud"],
        &[AUDITOR_PASSWORD, new_pw],
    ));
    refused(
        &run(&config, &verify_as_aud, &[AUDITOR_PASSWORD]),
        6,
        "operator name or password is wrong",
    );
    ok(run(&config, &verify_as_aud, &[new_pw]));

    // The last active ca-admin is never disabled: admin and admin2 logged in at once (two
    // sessions); admin disables admin2 and admin3, then admin2's session may not disable admin.
    let cfg = central::CentreConfig::load(&config).unwrap();
    let pool = central::db::pool(&cfg.database).unwrap();
    let roles = [central::operators::Role::CaAdmin];
    let pw = |p: &str| zeroize::Zeroizing::new(p.to_owned());
    let (s1, s2) = rt.block_on(async {
        let s1 =
            central::operators::log_in(&pool, "centre", "admin", &pw(ADMIN_PASSWORD), "t", &roles)
                .await
                .unwrap();
        let s2 = central::operators::log_in(
            &pool,
            "centre",
            "admin2",
            &pw(ADMIN2_PASSWORD),
            "t",
            &roles,
        )
        .await
        .unwrap();
        (s1, s2)
    });
    rt.block_on(central::operators::disable(&pool, &s1, "admin3"))
        .unwrap();
    rt.block_on(central::operators::disable(&pool, &s1, "admin2"))
        .unwrap();
    let e = rt
        .block_on(central::operators::disable(&pool, &s2, "admin"))
        .unwrap_err();
    assert_eq!(e.exit_code(), 5, "{e}");
    assert!(
        e.to_string()
            .starts_with("admin is the last active ca-admin; the centre must keep one"),
        "{e}"
    );
    let active: i64 = rt
        .block_on(client.query_one(
            "SELECT count(*) FROM operators WHERE role = 'ca-admin' AND active",
            &[],
        ))
        .unwrap()
        .get(0);
    assert_eq!(active, 1);
    assert!(rt
        .block_on(refusal_reasons(&client))
        .iter()
        .any(|r| r == "last active ca-admin"));
    // A session of an operator disabled since cannot act either.
    let e = rt
        .block_on(central::operators::unlock(&pool, &s2, "aud"))
        .unwrap_err();
    assert_eq!(e.exit_code(), 6, "{e}");

    // The log holds, with every checkpoint signed by the centre's audit key.
    let out = ok(run(
        &config,
        &["audit", "verify-log", "--operator", "admin"],
        &[ADMIN_PASSWORD],
    ));
    assert!(out.contains("the chain holds"), "{out}");
    let n: i64 = rt
        .block_on(client.query_one("SELECT count(*) FROM audit_checkpoints", &[]))
        .unwrap()
        .get(0);
    assert!(n >= 8, "a checkpoint after each change: {n}");
    assert!(
        out.contains(&format!("{n} checkpoint(s) verified")),
        "{out}"
    );
    drop(client);
    drop(cluster);
}

fn root_pem(rt: &tokio::runtime::Runtime, client: &tokio_postgres::Client, dir: &Path) -> PathBuf {
    let der: Vec<u8> = rt
        .block_on(client.query_one(
            "SELECT cert_der FROM ca_keys WHERE ca = 'root' AND state = 'active'",
            &[],
        ))
        .unwrap()
        .get(0);
    let p = dir.join("root.pem");
    std::fs::write(&p, ca::cert_pem(&der).unwrap()).unwrap();
    p
}

/// `idcentral audit verify DIR --root ROOT`: no --config, no database.
fn centre_verify(dir: &Path, root: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_idcentral"))
        .args(["audit", "verify"])
        .arg(dir)
        .arg("--root")
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .expect("run idcentral")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn the_national_audit_export_is_the_stations_format_and_one_changed_byte_is_found() {
    let (tmp, cluster, config) = centre("");
    init_two_admins(&config);
    let rt = rt();
    let client = rt.block_on(db(&cluster));
    ok(run(
        &config,
        &[
            "operator",
            "add",
            "--name",
            "aud",
            "--role",
            "auditor",
            "--operator",
            "admin",
        ],
        &[ADMIN_PASSWORD, AUDITOR_PASSWORD],
    ));
    add_station(&config, "tas01-st1");
    // A refusal whose details hold a comma and quotes (CSV quoting).
    refused(
        &run(
            &config,
            &["audit", "verify-log", "--operator", "nobody"],
            &["x"],
        ),
        6,
        "operator name or password is wrong",
    );

    // The audit signer: certified by the National Root under the audit-signer profile.
    let signer: Vec<u8> = rt
        .block_on(client.query_one(
            "SELECT cert_der FROM audit_signer_keys WHERE label = 'centre-audit-1' AND state = 'active'",
            &[],
        ))
        .unwrap()
        .get(0);
    let info = ca::CertInfo::parse(&signer).unwrap();
    assert!(info.subject.contains("centre audit"), "{}", info.subject);

    let root = root_pem(&rt, &client, tmp.path());
    let out_dir = tmp.path().join("export");
    let out = ok(run(
        &config,
        &[
            "--json",
            "audit",
            "export",
            "--out",
            out_dir.to_str().unwrap(),
            "--operator",
            "aud",
        ],
        &[AUDITOR_PASSWORD],
    ));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let count = r["count"].as_u64().unwrap();
    let (last, _) = rt.block_on(heads(&client));
    assert_eq!(
        r["last_seq"].as_i64(),
        Some(last),
        "the export holds its own event"
    );
    assert_eq!(r["first_seq"], 1);
    assert!(r["checkpoints"].as_u64().unwrap() >= 3, "{out}");
    // Private: the folder 0700, its files 0600.
    assert_eq!(
        std::fs::metadata(&out_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for f in ["events.jsonl", "manifest.json", "manifest.sig", "chain.pem"] {
        let m = std::fs::metadata(out_dir.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o600, "{f}");
    }
    // The auditor searches the log: newest first, by action or prefix, with a limit; each
    // search audited, a bad filter refused naming the field and audited too.
    let search = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--json", "audit", "search"];
        all.extend_from_slice(args);
        all.extend(["--operator", "aud"]);
        serde_json::from_str(&ok(run(&config, &all, &[AUDITOR_PASSWORD]))).unwrap()
    };
    let found = search(&["--action", "audit.export"]);
    let events = found["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{found}");
    assert_eq!(
        (
            &events[0]["operator"],
            &events[0]["role"],
            &events[0]["object"]
        ),
        (&json!("aud"), &json!("auditor"), &json!("audit-log"))
    );
    assert_eq!(events[0]["details"]["format"], "jsonl", "{found}");
    let all_ops = search(&["--action", "operator.*"]);
    let n = all_ops["events"].as_array().unwrap().len();
    assert!(n >= 2 && all_ops["more"] == false, "{all_ops}");
    let ops = search(&["--action", "operator.*", "--limit", "2"]);
    let seqs: Vec<i64> = ops["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(
                e["action"].as_str().unwrap().starts_with("operator."),
                "{e}"
            );
            e["seq"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(seqs.len(), 2, "{ops}");
    assert!(seqs[0] > seqs[1], "newest first: {seqs:?}");
    assert_eq!(ops["more"], n > 2, "{ops}");
    let newest = search(&["--action", "operator.*", "--limit", "1"]);
    assert_eq!(newest["events"][0]["seq"].as_i64(), Some(seqs[0]));
    assert_eq!(newest["more"], true, "{newest}");
    // Dates and times: the export's own day includes it; a time given with an offset is the
    // same instant in UTC, compared to the microsecond.
    let at = events[0]["time"].as_str().unwrap().to_owned();
    let day = &at[..10];
    let none = search(&["--action", "audit.export", "--to", "2000-01-01"]);
    assert_eq!(none["events"], json!([]), "{none}");
    let same = search(&["--action", "audit.export", "--from", day, "--to", day]);
    assert_eq!(same["events"].as_array().unwrap().len(), 1, "{same}");
    let instant =
        time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).unwrap();
    let plus5 = instant
        .to_offset(time::UtcOffset::from_hms(5, 0, 0).unwrap())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let from_it = search(&["--action", "audit.export", "--from", &plus5]);
    assert_eq!(
        from_it["events"].as_array().unwrap().len(),
        1,
        "{plus5}: {from_it}"
    );
    let before_it = search(&["--action", "audit.export", "--to", &plus5]);
    assert_eq!(before_it["events"], json!([]), "{plus5}: {before_it}");
    // By station, actor and object: the centre's own operators act as the centre.
    let by_actor = search(&[
        "--actor",
        "aud",
        "--object",
        "audit-log",
        "--station",
        "centre",
    ]);
    let acts: Vec<&str> = by_actor["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        acts.contains(&"audit.export") && acts.contains(&"audit.searched"),
        "{by_actor}"
    );
    assert!(search(&["--station", "tas01-st1"])["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["station"] == "tas01-st1"));
    for (args, said) in [
        (vec!["--limit", "0"], "limit: 0 must be 1 to 10000"),
        (
            vec!["--action", "document*.x"],
            "action: \"document*.x\" must be an action name",
        ),
        (
            vec!["--from", "2026-13-01"],
            "from: \"2026-13-01\" must be YYYY-MM-DD",
        ),
    ] {
        let mut all = vec!["audit", "search"];
        all.extend(args.iter().copied());
        all.extend(["--operator", "aud"]);
        refused(&run(&config, &all, &[AUDITOR_PASSWORD]), 2, said);
    }
    let actions = rt.block_on(audit_actions(&client));
    assert_eq!(
        actions.iter().filter(|a| *a == "audit.searched").count(),
        10
    );
    let searched: String = rt
        .block_on(client.query_one(
            "SELECT details FROM audit_log WHERE action = 'audit.searched' ORDER BY seq DESC LIMIT 1",
            &[],
        ))
        .unwrap()
        .get(0);
    let searched: serde_json::Value = serde_json::from_str(&searched).unwrap();
    assert_eq!(searched["filter"]["station"], "tas01-st1", "{searched}");
    assert_eq!(searched["filter"]["limit"], 100, "{searched}");
    assert!(
        searched["returned"].is_number() && searched["more"] == false,
        "{searched}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "audit.search-refused")
            .count(),
        3
    );
    assert!(actions.iter().any(|a| a == "audit.export"));
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "audit.signer-certified")
            .count(),
        1,
        "the signer is made once, by init; later commands reuse it"
    );
    assert_eq!(actions[1], "audit.signer-certified", "{actions:?}");

    // The station's verifier (registry::export, what `idstation audit verify` runs) and the
    // centre's accept it.
    let root_bytes = std::fs::read(&root).unwrap();
    let report = registry::export::verify_export(&out_dir, &root_bytes).expect("station verifier");
    assert_eq!(report.count, count);
    assert!(report.signer_subject.contains("centre audit"));
    let v = centre_verify(&out_dir, &root);
    assert!(v.status.success(), "{}", text(&v));
    assert!(
        String::from_utf8_lossy(&v.stdout).contains(&format!("OK: {count} event(s) 1..{last}")),
        "{}",
        text(&v)
    );
    // The station's binary too, when this build has one.
    let idstation = Path::new(env!("CARGO_BIN_EXE_idcentral")).with_file_name("idstation");
    if idstation.is_file() {
        let o = Command::new(&idstation)
            .arg("--data-dir")
            .arg(tmp.path().join("no-station"))
            .args(["audit", "verify"])
            .arg(&out_dir)
            .arg("--root")
            .arg(&root)
            .output()
            .unwrap();
        assert!(o.status.success(), "idstation audit verify: {}", text(&o));
    }

    // One byte changed in an event: refused naming its sequence number.
    let bad = tmp.path().join("bad-event");
    copy_dir(&out_dir, &bad);
    let events = std::fs::read_to_string(bad.join("events.jsonl")).unwrap();
    let line3 = events.lines().nth(2).unwrap();
    let at = events.find(line3).unwrap() + line3.find("\"station\":\"").unwrap() + 11;
    let mut bytes = events.into_bytes();
    bytes[at] ^= 0x01;
    std::fs::write(bad.join("events.jsonl"), &bytes).unwrap();
    let v = centre_verify(&bad, &root);
    refused(
        &v,
        2,
        "export: audit log broken at sequence 3: hash does not match",
    );
    let e = registry::export::verify_export(&bad, &root_bytes).unwrap_err();
    assert!(e.to_string().contains("sequence 3"), "{e}");

    // One byte of the manifest: its signature no longer verifies.
    let bad = tmp.path().join("bad-manifest");
    copy_dir(&out_dir, &bad);
    let mut m = std::fs::read(bad.join("manifest.json")).unwrap();
    let i = m.windows(7).position(|w| w == b"\"count\"").unwrap() + 8;
    m[i] = if m[i] == b'9' { b'8' } else { m[i] + 1 };
    std::fs::write(bad.join("manifest.json"), &m).unwrap();
    refused(
        &centre_verify(&bad, &root),
        2,
        "manifest.sig does not verify with the signer certificate's key",
    );

    // Another root is not trusted.
    let csca: Vec<u8> = rt
        .block_on(client.query_one("SELECT cert_der FROM ca_keys WHERE ca = 'csca'", &[]))
        .unwrap()
        .get(0);
    let other = tmp.path().join("csca.pem");
    std::fs::write(&other, ca::cert_pem(&csca).unwrap()).unwrap();
    refused(&centre_verify(&out_dir, &other), 2, "export: ");

    // A folder that holds an export is not overwritten.
    refused(
        &run(
            &config,
            &[
                "audit",
                "export",
                "--out",
                out_dir.to_str().unwrap(),
                "--operator",
                "aud",
            ],
            &[AUDITOR_PASSWORD],
        ),
        5,
        "already holds an export",
    );
    assert!(rt
        .block_on(audit_actions(&client))
        .iter()
        .any(|a| a == "audit.export-failed"));
    assert!(
        out_dir.join("manifest.json").is_file(),
        "the export in the way stays"
    );

    // Date ranges and CSV: today's events (all of them) and none from 2000; both verify.
    let today = &registry::now_rfc3339()[..10];
    let csv_dir = tmp.path().join("csv");
    let out = ok(run(
        &config,
        &[
            "--json",
            "audit",
            "export",
            "--out",
            csv_dir.to_str().unwrap(),
            "--from",
            today,
            "--to",
            today,
            "--format",
            "csv",
            "--operator",
            "admin",
        ],
        &[ADMIN_PASSWORD],
    ));
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["first_seq"], 1);
    let rep = registry::export::verify_export(&csv_dir, &root_bytes).expect("csv export");
    assert_eq!(Some(rep.count), r["count"].as_u64());
    let csv = std::fs::read_to_string(csv_dir.join("events.csv")).unwrap();
    assert!(csv.starts_with(registry::export::CSV_HEADER));
    let empty_dir = tmp.path().join("y2000");
    let out = ok(run(
        &config,
        &[
            "--json",
            "audit",
            "export",
            "--out",
            empty_dir.to_str().unwrap(),
            "--from",
            "2000-01-01",
            "--to",
            "2000-01-02",
            "--operator",
            "aud",
        ],
        &[AUDITOR_PASSWORD],
    ));
    assert!(out.contains("\"count\": 0"), "{out}");
    registry::export::verify_export(&empty_dir, &root_bytes).expect("empty export");
    refused(
        &run(
            &config,
            &[
                "audit",
                "export",
                "--out",
                "/tmp/never",
                "--from",
                "yesterday",
                "--operator",
                "aud",
            ],
            &[AUDITOR_PASSWORD],
        ),
        2,
        "from: \"yesterday\" must be YYYY-MM-DD or an RFC 3339 time",
    );

    // The checkpoint table is append-only; a forged checkpoint is found by verify-log.
    for sql in [
        "UPDATE audit_checkpoints SET time = 'x'",
        "DELETE FROM audit_checkpoints",
        "TRUNCATE audit_checkpoints",
    ] {
        let e = rt.block_on(client.execute(sql, &[])).expect_err(sql);
        let msg = e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_default();
        assert!(
            msg.contains("audit_checkpoints is append-only"),
            "{sql}: {e}"
        );
    }
    let forged = rt.block_on(async {
        client
            .batch_execute(
                "ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_no_update;
                 UPDATE audit_checkpoints SET time = '2001-01-01T00:00:00.000000Z'
                   WHERE seq = (SELECT min(seq) FROM audit_checkpoints);
                 ALTER TABLE audit_checkpoints ENABLE TRIGGER audit_checkpoints_no_update;",
            )
            .await
    });
    forged.expect("the test's database user owns the table");
    refused(
        &run(
            &config,
            &["audit", "verify-log", "--operator", "aud"],
            &[AUDITOR_PASSWORD],
        ),
        5,
        "the signature does not verify with centre-audit-1",
    );
    drop(client);
    drop(cluster);
}
