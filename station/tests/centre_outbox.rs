//! The centre's e-government dead letters seen and retried from an enrolled station (issue 21;
//! docs/egov.md "The station's view"), with real parts: a PostgreSQL cluster, `idcentral serve`
//! with its publisher, an e-government receiver over mutual TLS (testrig::egov), the station
//! enrolled in this process and the `idstation` binary. A message is driven to the dead letter
//! by a refusing receiver, listed from the station as ca-admin and as auditor, an auditor's
//! retry is refused at the station and (with a forged role) at the centre, both audited; the
//! ca-admin's retry makes it pending and, the receiver accepting, delivered — the receiver took
//! it exactly once. A disabled station is refused and an unreachable centre is exit 7. Every
//! wait polls with a deadline.
//!
//! Needs `idcentral` built in the same target dir as the tests build it (`cargo test -p central --no-run`).

#[path = "common/egov_centre.rs"]
mod egov_centre;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use centre_api::{OutboxList, OutboxMessage, OutboxStatus};
use egov_centre::*;
use registry::Role;

fn idstation(rig: &EgovRig, args: &[&str], password: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_idstation"))
        .arg("--data-dir")
        .arg(&rig.data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run idstation");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    drop(stdin);
    let o = child.wait_with_output().expect("wait for idstation");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for secret in [EGOV_ADMIN_PASSWORD, EGOV_AUDITOR_PASSWORD, EGOV_HSM_PIN] {
        assert!(!all.contains(secret), "a secret in the output:\n{all}");
    }
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

/// The station's audit events as (operator, role, action, details).
fn station_events(rig: &EgovRig) -> Vec<(String, String, String, String)> {
    let reg = registry::Registry::open_read_only(rig.data.join("registry.sqlite")).unwrap();
    let mut stmt = reg
        .connection()
        .prepare("SELECT operator, role, action, details FROM audit_events ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// The centre's audit events (`idcentral audit export`), as JSON.
fn centre_events(rig: &EgovRig) -> Vec<serde_json::Value> {
    let out = rig
        .dir
        .join(format!("centre-export-{}", testrig::egov::new_job()));
    let o = rig.centre.idcentral(
        &[
            "audit",
            "export",
            "--out",
            out.to_str().unwrap(),
            "--operator",
            "admin",
        ],
        &format!("{}\n", testrig::centre::CENTRE_ADMIN_PASSWORD),
    );
    assert!(o.status.success(), "audit export: {}", text(&o));
    let mut events = Vec::new();
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let body = std::fs::read_to_string(&path).unwrap();
            events.extend(body.lines().map(|l| serde_json::from_str(l).unwrap()));
        }
    }
    assert!(
        !events.is_empty(),
        "no events exported to {}",
        out.display()
    );
    events
}

fn list(rig: &EgovRig, operator: &str, password: &str, failed: bool) -> Vec<OutboxMessage> {
    list_limited(rig, operator, password, failed, None).messages
}

fn list_limited(
    rig: &EgovRig,
    operator: &str,
    password: &str,
    failed: bool,
    limit: Option<&str>,
) -> OutboxList {
    let mut args = vec!["--json", "outbox", "list", "--operator", operator];
    if failed {
        args.push("--failed");
    }
    if let Some(n) = limit {
        args.extend(["--limit", n]);
    }
    let o = idstation(rig, &args, password);
    assert!(o.status.success(), "outbox list: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
}

#[test]
fn a_dead_letter_is_listed_and_retried_from_the_station_by_role_and_delivered_once() {
    let mut rig = EgovRig::start("tas01-egov", 2);
    let document = rig.issue("31234567890121");
    let dead = dead_letter(&rig, &document);
    listed_by_role(&rig, &dead, &document);
    auditor_refused(&rig, &dead);
    retried_and_delivered_once(&rig, &dead);
    check_station_audit(&rig);
    check_centre_audit(&rig, dead.id);
    disabled_then_unreachable(&mut rig);
}

/// The receiver refuses: two attempts, then the dead letter (polled through the core).
fn dead_letter(rig: &EgovRig, document: &str) -> OutboxMessage {
    let dead = rig.dead_letter(document);
    assert_eq!(dead.status, OutboxStatus::Failed);
    assert_eq!(dead.attempts, 2);
    assert!(
        dead.last_error
            .as_deref()
            .unwrap_or("")
            .contains("HTTP 500"),
        "{dead:?}"
    );
    assert!(
        dead.dead_since.is_some() && dead.receipt.is_none(),
        "{dead:?}"
    );
    assert_eq!(
        (rig.recv.posts(dead.id), rig.recv.accepted(dead.id)),
        (2, 0)
    );
    dead
}

/// Listed by the CLI as ca-admin (text) and as auditor (JSON).
fn listed_by_role(rig: &EgovRig, dead: &OutboxMessage, document: &str) {
    let o = idstation(
        rig,
        &["outbox", "list", "--failed", "--operator", "admin"],
        EGOV_ADMIN_PASSWORD,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.contains(document) && out.contains("failed") && out.contains("HTTP 500"),
        "{out}"
    );
    let seen = list(rig, "auditor", EGOV_AUDITOR_PASSWORD, true);
    assert_eq!(seen.iter().map(|m| m.id).collect::<Vec<_>>(), [dead.id]);
    // `--limit`: the newest N and whether older ones were left out; 0 refused naming it.
    let one = list_limited(rig, "auditor", EGOV_AUDITOR_PASSWORD, true, Some("1"));
    assert_eq!((one.messages.len(), one.more), (1, false), "{one:?}");
    let o = idstation(
        rig,
        &["outbox", "list", "--limit", "0", "--operator", "auditor"],
        EGOV_AUDITOR_PASSWORD,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("limit: 0 must be from 1 to 1000"),
        "{}",
        text(&o)
    );
    // `--local`: the station's own outbox (no delivery state), not the centre's.
    let o = idstation(
        rig,
        &["--json", "outbox", "list", "--local", "--operator", "admin"],
        EGOV_ADMIN_PASSWORD,
    );
    assert!(o.status.success(), "{}", text(&o));
    let own: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(own
        .iter()
        .all(|m| m.get("payload").is_some() && m.get("status").is_none()));
}

/// The auditor may not retry: refused at the station (the CLI's exit 6, the core), and a
/// station naming a role it may not is refused by the centre (403, its rule). Nothing changed.
fn auditor_refused(rig: &EgovRig, dead: &OutboxMessage) {
    let id = dead.id.to_string();
    let o = idstation(
        rig,
        &["outbox", "retry", &id, "--operator", "auditor"],
        EGOV_AUDITOR_PASSWORD,
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let mut st = station::Station::open_read_only(&rig.data).unwrap();
    let auditor = rig.session(&mut st, "auditor", EGOV_AUDITOR_PASSWORD);
    let e = station::centre::outbox::retry(&mut st, &auditor, dead.id).unwrap_err();
    assert!(matches!(e, station::StationError::NotPermitted(_)), "{e}");
    let client = station::centre::CentreClient::for_station(&st).unwrap();
    let forged = centre_api::OutboxRetryRequest {
        operator: "auditor".into(),
        role: Role::Auditor.as_str().into(),
    };
    let e = client
        .post::<_, OutboxMessage>(&centre_api::paths::outbox_retry(dead.id), &forged)
        .unwrap_err();
    match &e {
        station::StationError::CentreRefused { status, refusal } => {
            assert_eq!(*status, 403);
            assert_eq!(refusal.rule, centre_api::rules::OPERATOR_ROLE_NOT_PERMITTED);
        }
        other => panic!("{other}"),
    }
    let still = list(rig, "admin", EGOV_ADMIN_PASSWORD, true);
    assert_eq!(still.len(), 1, "nothing changed: {still:?}");
}

/// The ca-admin's retry: pending at once, delivered once the receiver accepts, taken once; a
/// retry of the delivered message is the centre's refusal (exit 5).
fn retried_and_delivered_once(rig: &EgovRig, dead: &OutboxMessage) {
    rig.recv.set(testrig::egov::Mode::Accept);
    let id = dead.id.to_string();
    let o = idstation(
        rig,
        &["--json", "outbox", "retry", &id, "--operator", "admin"],
        EGOV_ADMIN_PASSWORD,
    );
    assert!(o.status.success(), "{}", text(&o));
    let retried: OutboxMessage = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (retried.status, retried.attempts),
        (OutboxStatus::Pending, 0)
    );
    let delivered = poll("the delivery", Duration::from_secs(30), || {
        list(rig, "admin", EGOV_ADMIN_PASSWORD, false)
            .into_iter()
            .find(|m| m.id == dead.id && m.status == OutboxStatus::Delivered)
    });
    assert!(delivered.receipt.is_some() && delivered.delivered_at.is_some());
    assert_eq!(rig.recv.accepted(dead.id), 1, "the receiver took it once");
    assert_eq!(rig.recv.kept(), [dead.id]);
    assert!(list(rig, "auditor", EGOV_AUDITOR_PASSWORD, true).is_empty());
    let o = idstation(
        rig,
        &["outbox", "retry", &id, "--operator", "admin"],
        EGOV_ADMIN_PASSWORD,
    );
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("outbox-message-not-failed"));
}

/// A disabled station is refused (exit 6); an unreachable centre is exit 7.
fn disabled_then_unreachable(rig: &mut EgovRig) {
    rig.centre.disable_station(&rig.station);
    let o = idstation(
        rig,
        &["outbox", "list", "--operator", "admin"],
        EGOV_ADMIN_PASSWORD,
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("station-disabled"));
    let refused = centre_events(rig).into_iter().any(|e| {
        e["action"] == "request.refused"
            && e["station"] == rig.station.as_str()
            && e["details"].to_string().contains("station-disabled")
    });
    assert!(
        refused,
        "the disabled station's refusal audited at the centre"
    );
    rig.centre.stop();
    let o = idstation(
        rig,
        &["outbox", "list", "--failed", "--operator", "auditor"],
        EGOV_AUDITOR_PASSWORD,
    );
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be reached"));
}

/// The station's log: the reads and the retry at the centre, the auditor's refusals (the
/// log-in's for the CLI, the core's, the centre's refusal of a retry of a delivered message).
fn check_station_audit(rig: &EgovRig) {
    let events = station_events(rig);
    let has = |op: &str, action: &str, part: &str| {
        events
            .iter()
            .any(|(o, _, a, d)| o == op && a == action && d.contains(part))
    };
    assert!(has("admin", "outbox.read", "\"at_centre\":true"));
    assert!(has("auditor", "outbox.read", "\"at_centre\":true"));
    assert!(has("admin", "outbox.retried", "\"at_centre\":true"));
    assert!(has(
        "auditor",
        "operator.refused",
        "retry e-government messages"
    ));
    assert!(has(
        "admin",
        "operator.refused",
        "outbox-message-not-failed"
    ));
}

/// The centre's log: each read and the retry with the station and operator, and the refusals.
fn check_centre_audit(rig: &EgovRig, id: i64) {
    let events = centre_events(rig);
    let by = |action: &str, op: &str| {
        events.iter().any(|e| {
            e["action"] == action && e["operator"] == op && e["station"] == rig.station.as_str()
        })
    };
    assert!(by("outbox.read", "admin"), "the ca-admin's read");
    assert!(by("outbox.read", "auditor"), "the auditor's read");
    assert!(by("outbox.retried", "admin"), "the retry");
    let refused = |rule: &str| {
        events.iter().any(|e| {
            e["action"] == "request.refused"
                && e["station"] == rig.station.as_str()
                && e["details"].to_string().contains(rule)
        })
    };
    assert!(refused("operator-role-not-permitted"), "the forged role");
    assert!(
        refused("outbox-message-not-failed"),
        "the retry of a delivered message"
    );
    let retried = events
        .iter()
        .find(|e| e["action"] == "outbox.retried" && e["station"] == rig.station.as_str())
        .unwrap();
    assert_eq!(retried["object"], format!("outbox:{id}"));
}
